"""Request parsing and authentication shared by the API views."""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from flask import g, request
from marshmallow import Schema
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from app import errors
from app.extensions import current_settings, db, key_store, token_denylist, verified_tokens
from app.models import User, UserSession
from app.request_context import request_actor
from app.services import access_tokens, organizations, sessions
from app.services.actor import Actor
from app.services.organizations import Access


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


def require_session(view: Callable) -> Callable:
    """Authenticate the request with an API session bearer token.

    Sets g.session, g.user and g.session_token; see _authenticate_session for the idle window.
    """
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _bearer_token()
        if token is None:
            raise errors.AuthenticationRequired("Send a session token: Authorization: Bearer <token>.")
        _authenticate_session(token)
        return view(*args, **kwargs)

    wrapper.requires_session = True  # read by the OpenAPI builder
    return wrapper


def optional_session(view: Callable) -> Callable:
    """As require_session when the request sends a bearer token (a bad one is still 401);
    without one the view runs anonymously, with g.user None."""
    authenticated = require_session(view)

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _bearer_token() is not None:
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

    The caller authenticates with an API session token, or with a Gatehouse access token
    that carries the `org:admin` scope and was issued for this organization (see
    services.organizations.require_access for who gets 401, 404 and 403). Sets g.user and
    g.access; the view reads them through current_actor() and current_access().
    """
    if permission not in organizations.ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _bearer_token()
            if token is None:
                raise errors.AuthenticationRequired(
                    "Send a session token or an access token with scope org:admin: Authorization: Bearer <token>.")
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
