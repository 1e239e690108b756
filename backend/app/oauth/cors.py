"""CORS for the endpoints an SPA calls directly: token, userinfo, revocation, JWKS.

Allowed origins are those of the registered clients' redirect URIs plus
CORS_EXTRA_ORIGINS. flask-cors takes a static origin list; ours changes
whenever a client is registered, so the check is done here, against the
client cache's copy of the list (re-read after any client changes).
"""

from __future__ import annotations

from typing import Callable

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import client_cache, current_settings, db

ALLOWED_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE = "600"
# Set by `cors_route` on the views it registers; read by `add_cors_headers`.
ANSWERS_CORS = "answers_cors"
# This request's allowed origin (or None), judged once: the preflight and its answer's headers both ask.
_ALLOWED_ORIGIN = "gatehouse.cors_origin"


def _allowed_origin(environ: dict, *, ask_database: bool = True) -> str | None:
    """The Origin of the request of this WSGI `environ` if it may read the answer; None without an Origin or
    for another one. Without `ask_database`, the registered clients' origins are those last read."""
    if _ALLOWED_ORIGIN not in environ:
        origin = environ.get("HTTP_ORIGIN")
        if origin and origin not in current_settings().cors_extra_origins:
            cache = client_cache()
            if origin not in (cache.cors_origins(db.session) if ask_database else cache.last_cors_origins()):
                origin = None
        environ[_ALLOWED_ORIGIN] = origin or None
    return environ[_ALLOWED_ORIGIN]


def cors_route(bp: Blueprint, rule: str, methods: list[str]) -> Callable[[Callable], Callable]:
    """`bp.route(rule, methods=methods)` for a view pages may call from another origin: its preflight
    (OPTIONS) is a route of its own, and every answer of either gets the CORS headers from
    `add_cors_headers`. No credentials: these endpoints use bearer tokens or client authentication,
    never cookies."""
    def register(view: Callable) -> Callable:
        def preflight() -> Response:
            response = Response(status=204)
            if _allowed_origin(request.environ):
                # The route's own methods (Fetch Standard §3.2.3): GET for JWKS, POST for token and revocation.
                response.headers["Access-Control-Allow-Methods"] = ", ".join(methods)
                response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
                response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
            return response

        for answering in (view, preflight):
            setattr(answering, ANSWERS_CORS, True)
        bp.add_url_rule(rule, view_func=view, methods=methods)
        bp.add_url_rule(rule, endpoint=f"{view.__name__}_preflight", view_func=preflight, methods=["OPTIONS"])
        return view
    return register


def add_cors_headers(response: Response) -> Response:
    """After every request of the blueprint: on a `cors_route` view's answer, its errors included (a
    refused input or a body over the limit, found before the view runs; the database down, judged by
    the origins last read), Access-Control-Allow-Origin for an allowed origin, so that the page can
    read the RFC 6749 §5.2 error (Fetch Standard §3.2.5)."""
    answered = request._get_current_object()  # once: every access through the proxy costs a context lookup
    if not getattr(current_app.view_functions.get(answered.endpoint), ANSWERS_CORS, False):
        return response
    try:
        # A 503 is a store that could not be reached: asking the database again would fail again, after as
        # long a wait (a connect timeout, the pool's timeout).
        origin = _allowed_origin(answered.environ, ask_database=response.status_code != 503)
    except SQLAlchemyError:
        # The origin list cannot be read (a refusal made before the view while the database is down, or a
        # transaction that failed): the answer is already decided, and goes without the header.
        origin = None
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    # Every answer, with an Origin or without: a cache must not serve one origin's answer to another.
    # (getlist: Werkzeug's `in` and `get` raise and catch a KeyError for a header the answer lacks.)
    if response.headers.getlist("Vary"):
        response.vary.add("Origin")
    else:
        response.headers.add("Vary", "Origin")
    return response
