"""CORS for the endpoints an SPA calls directly: token, userinfo, revocation, JWKS.

Allowed origins are those of the registered clients' redirect URIs plus
CORS_EXTRA_ORIGINS. flask-cors takes a static origin list; ours changes
whenever a client is registered, so the check is done here, against the
client cache's copy of the list (re-read after any client changes).
"""

from __future__ import annotations

from functools import wraps
from typing import Callable

from flask import Response, make_response, request

from app.extensions import client_cache, current_settings, db

ALLOWED_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE = "600"


def _allowed(origin: str) -> bool:
    return origin in current_settings().cors_extra_origins or origin in client_cache().cors_origins(db.session)


def with_cors(view: Callable) -> Callable:
    """Answer preflights and add Access-Control-Allow-Origin for allowed origins.
    No credentials: these endpoints use bearer tokens or client authentication, never cookies."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        environ = request.environ
        origin = environ.get("HTTP_ORIGIN")
        if environ["REQUEST_METHOD"] == "OPTIONS":
            response = Response(status=204)
            if origin and _allowed(origin):
                # The route's own methods (Fetch Standard §3.2.3): GET for JWKS, POST for token and revocation.
                methods = sorted(request.url_rule.methods - {"OPTIONS", "HEAD"})
                response.headers["Access-Control-Allow-Methods"] = ", ".join(methods)
                response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
                response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        else:
            response = view(*args, **kwargs)
            if not isinstance(response, Response):
                response = make_response(response)
        if origin and _allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
        # Every answer, with an Origin or without: a cache must not serve one origin's answer to another.
        if "Vary" in response.headers:
            response.vary.add("Origin")
        else:
            response.headers["Vary"] = "Origin"
        return response
    return wrapper
