"""The browser sign-in session: a server-side UserSession behind an HttpOnly cookie."""

from __future__ import annotations

from flask import Response, request

from app.errors import AuthenticationRequired
from app.extensions import current_settings, db
from app.models import SessionKind, UserSession
from app.services import sessions

# Set after a sign-in that an authorization request sent the user to: {"session":
# the new session's id, "request": that request's URL}. It satisfies prompt=login
# and max_age for that one request (its consent round trip included) and is
# dropped once the request is answered; a sign-in made for anything else never does.
FRESH_LOGIN_KEY = "fresh_login_session"


def current_browser_session() -> UserSession | None:
    """The live browser session from the cookie, its use recorded when due (services.sessions); None if
    absent or dead."""
    token = request.cookies.get(current_settings().BROWSER_SESSION_COOKIE)
    if not token:
        return None
    try:
        session = sessions.authenticate_token(db.session, token=token, settings=current_settings(),
                                              kind=SessionKind.BROWSER)
    except AuthenticationRequired:
        return None
    if db.session.is_modified(session):  # its use was recorded: keep that even if the view fails
        db.session.commit()
    return session


def set_session_cookie(response: Response, token: str, session: UserSession) -> None:
    settings = current_settings()
    response.set_cookie(settings.BROWSER_SESSION_COOKIE, token, expires=session.absolute_expires_at,
                        secure=settings.secure_cookies, httponly=True, samesite="Lax", path="/")


def clear_session_cookie(response: Response) -> None:
    settings = current_settings()
    response.delete_cookie(settings.BROWSER_SESSION_COOKIE, path="/", secure=settings.secure_cookies,
                           httponly=True, samesite="Lax")
