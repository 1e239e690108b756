"""Request parsing and authentication shared by the API views."""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from flask import g, request
from marshmallow import Schema
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from app import errors
from app.extensions import current_settings, db
from app.models import User, UserSession
from app.request_context import request_actor
from app.services import sessions
from app.services.actor import Actor


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


def require_session(view: Callable) -> Callable:
    """Authenticate the request with an API session bearer token.

    Sets g.session, g.user and g.session_token; the session's idle window slides forward.
    """
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _bearer_token()
        if token is None:
            raise errors.AuthenticationRequired("Send a session token: Authorization: Bearer <token>.")
        session = sessions.authenticate_token(db.session, token=token, settings=current_settings())
        db.session.commit()  # keep the slid expiry even if the view fails
        g.session, g.user, g.session_token = session, session.user, token
        return view(*args, **kwargs)

    wrapper.requires_session = True  # read by the OpenAPI builder
    return wrapper


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


def current_user() -> User:
    return g.user


def current_session() -> UserSession:
    return g.session


def current_token() -> str:
    """The bearer token this request authenticated with."""
    return g.session_token
