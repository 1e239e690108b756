"""Request parsing and authentication shared by the API views."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, Callable

from flask import g, request
from marshmallow import Schema
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from app import errors
from app.extensions import (current_settings, db, key_store, refuse_when_api_key_failures_spent,
                            spend_api_key_failure, token_denylist, verified_tokens)
from app.models import ApiKey, User, UserSession
from app.request_context import request_actor
from app.security import api_keys as key_format
from app.services import access_tokens, api_keys, organizations, sessions
from app.services.actor import Actor
from app.services.organizations import Access


@contextmanager
def failed_password_checks_kept() -> Iterator[None]:
    """Around a service that checks the account's password first: a wrong one's failure count and audit
    event are committed before the error propagates (nothing else is written before the check)."""
    try:
        yield
    except (errors.AccountLocked, errors.InvalidCredentials):
        db.session.commit()
        raise


def load_body(schema: Schema) -> dict[str, Any]:
    """Validate the JSON body against `schema`.

    Raises 415 for a non-JSON content type, 400 for malformed JSON and
    marshmallow's ValidationError (422) for invalid fields.
    """
    if not request.is_json:
        raise UnsupportedMediaType("Send the request body as application/json.")
    try:
        payload = request.get_json()
    except BadRequest:
        raise errors.BadRequest("The request body is not valid JSON.") from None
    return schema.load(payload)


def load_query(schema: Schema) -> dict[str, Any]:
    """Validate the query string against `schema` (422 on invalid values)."""
    return schema.load(request.args.to_dict())


def current_actor() -> Actor:
    """The caller: the signed-in user when there is one, with IP, user agent and request id."""
    session: UserSession | None = g.get("session")
    return request_actor(user=g.get("user"), session_id=session.id if session else None)


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _authenticate_session(token: str) -> UserSession:
    """Authenticate an API session token; sets g.session, g.user and g.session_token.

    The idle window slides forward when its use is due to be recorded (services.sessions), and stays
    slid even if the view fails.
    """
    session = sessions.authenticate_token(db.session, token=token, settings=current_settings())
    if db.session.is_modified(session):
        db.session.commit()
    g.session, g.user, g.session_token = session, session.user, token
    return session


def allow_api_key(scope: str) -> Callable[[Callable], Callable]:
    """Let personal API keys holding `scope` (security/api_keys.py) call this view, which
    authenticates with require_session or require_org_permission; the order of the decorators
    does not matter. A view without it refuses every key (403): every endpoint a key may reach
    declares the scope it needs here, and the others (password change, account deletion, key
    creation among them) stay a session's.
    """
    if scope not in key_format.SCOPES:
        raise ValueError(f"unknown API key scope {scope!r}")

    def mark(view: Callable) -> Callable:
        view.api_key_scope = scope  # read by _authenticate_api_key and the OpenAPI builder
        return view

    return mark


def _presented_api_key() -> str | None:
    return request.headers.get(key_format.HEADER)


def _refuse_api_key_in_query() -> None:
    """Refuse, with 400, a request whose query string carries an API key: a parameter named like
    one (api_key, apikey, x-api-key, x_api_key) or any value starting with `ghk_`. Query strings
    reach access logs and browser histories, so such a key is never used, even beside a valid
    credential, and the refusal tells the client to move it to the header (and to revoke it).
    """
    for name, value in request.args.items(multi=True):
        if name.lower() in key_format.QUERY_PARAMETER_NAMES or key_format.looks_like_key(value):
            raise errors.BadRequest(f"API keys are never accepted in a query string (it reaches logs): send it as "
                                    f"{key_format.HEADER}: <key>, and revoke a key that was sent this way.")


def _authenticate_api_key(key: str, scope: str | None) -> ApiKey:
    """Authenticate a personal API key for a view needing `scope` (None: no key may call it);
    sets g.user.

    Its last use, when due to be recorded, and the audit event of an expired key's use are
    committed whatever happens next. Failed presentations count against the per-IP budget
    RATELIMIT_API_KEY_FAILURES (extensions.py); past it, every key of that IP waits (429).
    """
    if _bearer_token() is not None:
        raise errors.BadRequest(f"Send a bearer token or an {key_format.HEADER} header, not both.")
    refuse_when_api_key_failures_spent()
    try:
        api_key = api_keys.authenticate_key(db.session, actor=current_actor(), presented=key)
    except errors.AuthenticationRequired:
        db.session.commit()  # keep the audit events of the refusal (nothing else is written before)
        spend_api_key_failure()
        raise
    if db.session.is_modified(api_key):
        db.session.commit()
    api_keys.require_scope(api_key, scope)
    g.user = api_key.user
    return api_key


def _authenticate_user(view: Callable) -> None:
    """Authenticate the caller of `view` (the outermost wrapper, which carries api_key_scope) with
    an API key (X-API-Key) or, without one, an API session bearer token."""
    _refuse_api_key_in_query()
    key = _presented_api_key()
    if key is not None:
        _authenticate_api_key(key, getattr(view, "api_key_scope", None))
        return
    token = _bearer_token()
    if token is None:
        raise errors.AuthenticationRequired("Send a session token: Authorization: Bearer <token>.")
    _authenticate_session(token)


def require_session(view: Callable) -> Callable:
    """Authenticate the request with an API session bearer token, or with a personal API key
    where the view allows one (allow_api_key).

    Sets g.user, and for a session g.session and g.session_token (see _authenticate_session for
    the idle window).
    """
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _authenticate_user(wrapper)
        return view(*args, **kwargs)

    wrapper.requires_session = True  # read by the OpenAPI builder
    return wrapper


def optional_session(view: Callable) -> Callable:
    """As require_session when the request sends a bearer token or an API key (a bad one is still
    401); without either the view runs anonymously, with g.user None."""
    authenticated = require_session(view)

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _bearer_token() is not None or _presented_api_key() is not None:
            return authenticated(*args, **kwargs)
        g.user = None
        return view(*args, **kwargs)

    wrapper.optional_session = True  # read by the OpenAPI builder
    return wrapper


def sends_bearer_token() -> bool:
    """Whether the request carries a bearer token (rate limits meant for anonymous callers skip it)."""
    return _bearer_token() is not None


def require_platform_admin(view: Callable) -> Callable:
    """Authenticate as require_session does, then allow platform administrators only.

    No or a bad token is 401; a signed-in user who is not a platform admin is 403.
    """
    @wraps(view)
    def admin_only(*args: Any, **kwargs: Any) -> Any:
        if not g.user.is_platform_admin:
            raise errors.PermissionDenied("Only platform administrators can do this.")
        return view(*args, **kwargs)

    return require_session(admin_only)


def _looks_like_jwt(token: str) -> bool:
    # API session tokens are unpadded base64url: they never contain a dot.
    return token.count(".") == 2


def require_org_permission(permission: str) -> Callable[[Callable], Callable]:
    """Authorise an organization-scoped view (`<org_id>` in its path) by the caller's membership.

    The caller authenticates with an API session token, with a Gatehouse access token
    that carries the `org:admin` scope and was issued for this organization, or with a personal
    API key where the view allows one (allow_api_key); the key's user then needs the permission
    (see services.organizations.require_access for who gets 401, 404 and 403). Sets g.user and
    g.access; the view reads them through current_actor() and current_access().
    """
    if permission not in organizations.ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _refuse_api_key_in_query()
            key = _presented_api_key()
            if key is not None:
                api_key = _authenticate_api_key(key, getattr(wrapper, "api_key_scope", None))
                g.access = organizations.require_access(db.session, user=api_key.user,
                                                        organization_id=kwargs["org_id"], permission=permission)
                return view(*args, **kwargs)
            token = _bearer_token()
            if token is None:
                raise errors.AuthenticationRequired(
                    "Send a session token or an access token with scope org:admin: Authorization: Bearer <token>; "
                    f"or an API key: {key_format.HEADER}: <key>.")
            if _looks_like_jwt(token):
                user, token_org_id = access_tokens.authenticate_org_admin_token(
                    db.session, token, settings=current_settings(), keys=key_store(),
                    verified_tokens=verified_tokens(), denied=token_denylist())
                g.user = user
                g.access = organizations.require_access(db.session, user=user, organization_id=kwargs["org_id"],
                                                        permission=permission, token_organization_id=token_org_id,
                                                        via_access_token=True)
            else:
                session = _authenticate_session(token)
                g.access = organizations.require_access(db.session, user=session.user,
                                                        organization_id=kwargs["org_id"], permission=permission)
            return view(*args, **kwargs)

        wrapper.requires_session = True  # read by the OpenAPI builder
        wrapper.org_permission = permission  # read by the tenant-isolation tests
        return wrapper

    return decorate


def current_access() -> Access:
    """The caller's access to the organization in the path (set by require_org_permission)."""
    return g.access


def current_user() -> User:
    return g.user


def current_session() -> UserSession:
    return g.session


def current_token() -> str:
    """The bearer token this request authenticated with."""
    return g.session_token
