"""Flask's signed-cookie session, opened only where a request brings one and saved only where used.

Only the HTML pages use Flask's session (the CSRF token, the pending sign-in); the protocol and API
endpoints never do. Flask's own interface builds a signing serializer for every request and reads
its session settings on the way out of every response, cookie or not.
"""

from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's SecureCookieSessionInterface, with one serializer per app and nothing done for a
    request that brought no session and whose view never touched one."""

    def __init__(self) -> None:
        self._serializers: dict[tuple, URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        # Keyed by the keys themselves: a rotated SECRET_KEY (or its fallbacks) gets a new serializer.
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        serializer = self._serializers.get(keys)
        if serializer is None:
            serializer = self._serializers[keys] = super().get_signing_serializer(app)
        return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # No Cookie header at all (machine clients): not even the header's parse.
        if "HTTP_COOKIE" not in request.environ or not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class() if app.secret_key else None
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        # Untouched, a session is unmodified; and ours are never permanent, so nothing refreshes its cookie.
        if session.accessed or session.modified:
            super().save_session(app, session, response)
