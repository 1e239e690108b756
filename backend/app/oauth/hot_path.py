"""The protocol requests machine clients make at volume, served in front of Flask's request cycle.

Client-credentials token requests, introspection and JWKS are answered here by the same Authlib
server, grants, endpoints and services as the Flask views in oauth/endpoints.py. What this skips is
Flask's per-request machinery, which these three endpoints do not use and which measured several
times the cost of their own work (scripts/bench_token.py): the request context (session cookie,
URL routing), the before/after-request hooks (rate limiter — these routes have no limits —,
CSRF, Talisman, request id), the Werkzeug request Authlib's Flask integration wraps (FormRequest
below) and the Flask response it builds (the server answers here in WSGI parts). The headers
those hooks give these routes' responses are captured once per scheme when the app is built, so
a response from here carries the same security headers as one from Flask
(tests/oauth/test_hot_path.py compares them).

Everything else goes to Flask unchanged: other grant types (they write audit events with the
request's actor), CORS requests (an Origin header: the allowed origins come from the client
registry), preflights, bodies without a Content-Length or over MAX_CONTENT_LENGTH, bodies that
are not form-encoded, requests with a query string, plain-http requests Authlib refuses, forms
Werkzeug refuses to parse, and forms holding a value the edge refuses (security/request_input.py).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from flask import Flask, g
from werkzeug.datastructures import EnvironHeaders, MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_host

from app.database import DATABASE_UNAVAILABLE
from app.extensions import db, key_store
from app.oauth.endpoints import JWKS_CACHE_CONTROL
from app.oauth.server import FormPayload, answering_in_wsgi, database_unavailable, oauth_server
from app.security.request_id import HEADER as REQUEST_ID_HEADER
from app.security.request_id import request_id_from
from app.security.request_input import form_is_refused

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable], Iterable[bytes]]
# A response as WSGI hands it on: status line, headers (without Content-Length), body.
Answer = tuple[str, list[tuple[str, str]], bytes]

# How long a serialised JWK Set is reused. Keys are published KEY_ACTIVATION_DELAY (default 600 s)
# before they sign and stay published long after they stop, and the response tells caches to keep
# it 300 s: a second of staleness changes nothing a relying party can see.
JWKS_REUSE_SECONDS = 1.0
JWKS_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", JWKS_CACHE_CONTROL)]


class ProtocolHotPath:
    """WSGI middleware: serves the hot protocol requests itself and passes every other request on."""

    def __init__(self, app: Flask, downstream: WSGIApp) -> None:
        self.app = app
        self.downstream = downstream
        self.max_body = app.config["MAX_CONTENT_LENGTH"]
        # The Flask views' own paths, so that a route moved in oauth/endpoints.py moves here too.
        paths = {rule.endpoint: rule.rule for rule in app.url_map.iter_rules()}
        served = {("POST", "oauth.token"): self._token, ("POST", "oauth.introspect"): self._introspect,
                  ("GET", "oauth.jwks"): self._jwks}
        self._handlers: dict[tuple[str, str], Callable[[dict[str, Any]], Answer]] = {
            (method, paths[endpoint]): handler for (method, endpoint), handler in served.items()}
        # Routes wrapped in oauth/cors.py's with_cors answer with Vary: Origin.
        varies = {paths[endpoint] for _, endpoint in served
                  if getattr(app.view_functions[endpoint], "answers_cors", False)}
        self._headers = {(method, path, scheme): _hook_headers(app, method, path, scheme)
                         + ([("Vary", "Origin")] if path in varies else [])
                         for method, path in self._handlers for scheme in ("http", "https")}
        self._jwks_lock = threading.Lock()
        self._jwks_body: tuple[float, bytes] = (0.0, b"")

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        handler = self._handlers.get((method, path))
        if handler is None or "HTTP_ORIGIN" in environ or not self._buffer_body(environ):
            return self.downstream(environ, start_response)
        with self.app.app_context():
            g.request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID", ""))
            try:
                status, headers, body = _served(handler, environ)
            # Flask answers plain http (oauth/endpoints.py), and the HTTP errors Werkzeug raises while
            # parsing (a form over its part or field size limits: 413), with its own error handlers.
            except (_NotHere, InsecureTransportError, HTTPException):
                environ["wsgi.input"] = io.BytesIO(environ["gatehouse.body"])
                return self.downstream(environ, start_response)
            except Exception:
                # As Flask's handler for unhandled errors does (api/envelope.py): log it, answer 500.
                log.exception("unhandled exception on %s %s", method, path)
                status, body = "500 INTERNAL SERVER ERROR", b"Internal Server Error"
                headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
            scheme = "https" if _is_secure(environ) else "http"
            start_response(status, [*headers, *self._headers[(method, path, scheme)],
                                    ("Content-Length", str(len(body))), (REQUEST_ID_HEADER, g.request_id)])
            return [body]

    def _buffer_body(self, environ: dict[str, Any]) -> bool:
        """Read the request body into memory, so that a request this path turns down can still
        go to Flask with its body. False when the body's size is not known or too large."""
        if environ["REQUEST_METHOD"] != "POST":
            environ["gatehouse.body"] = b""
            return True
        length = environ.get("CONTENT_LENGTH") or ""
        if not length.isdigit() or int(length) > self.max_body or "HTTP_TRANSFER_ENCODING" in environ:
            return False
        body = environ["wsgi.input"].read(int(length)) if int(length) else b""
        environ["gatehouse.body"] = body
        environ["wsgi.input"] = io.BytesIO(body)
        return True

    def _token(self, environ: dict[str, Any]) -> Answer:
        request = self._form_request(environ)
        # Authlib picks the grant from payload.data; so does this test.
        if request.payload.data.get("grant_type") != "client_credentials":
            raise _NotHere
        response = oauth_server().create_token_response(request)
        # As the view does, if anything opened a session: a client-credentials grant writes nothing
        # itself, and with its client from the cache (services.clients.ClientCache) it opens none.
        if db.session.registry.has():
            db.session.commit()
        return _answer(*response)

    def _introspect(self, environ: dict[str, Any]) -> Answer:
        return _answer(*oauth_server().create_endpoint_response("introspection", self._form_request(environ)))

    def _form_request(self, environ: dict[str, Any]) -> FormRequest:
        # Werkzeug parses a form only of this media type; anything else (JSON, multipart) is Flask's.
        # So is a query string: these endpoints take their parameters in the body.
        mimetype = parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower()
        if mimetype != "application/x-www-form-urlencoded" or environ.get("QUERY_STRING"):
            raise _NotHere
        # Read per request, as Flask reads it.
        request = FormRequest(environ, trusted_hosts=self.app.config["TRUSTED_HOSTS"])
        # Flask refuses what the database could not store, in the protocol's format (security/request_input.py).
        if form_is_refused(request.form, environ.get("HTTP_AUTHORIZATION", "")):
            raise _NotHere
        return request

    def _jwks(self, environ: dict[str, Any]) -> Answer:
        reused_until, body = self._jwks_body
        if time.monotonic() >= reused_until:
            with self._jwks_lock:
                reused_until, body = self._jwks_body
                if time.monotonic() >= reused_until:
                    # Compact, with a final newline, as jsonify writes it.
                    body = json.dumps(key_store().jwks(), separators=(",", ":")).encode() + b"\n"
                    self._jwks_body = (time.monotonic() + JWKS_REUSE_SECONDS, body)
        return "200 OK", JWKS_HEADERS, body


class FormRequest(OAuth2Request):
    """The OAuth2Request Authlib's endpoints read, made from the WSGI environ of a form-encoded POST
    without a query string: what FlaskOAuth2Request would give for it, at a sixth of the cost (15 µs
    against 87 for a token request, side by side: no Werkzeug request, no IRI of the URL). The form is parsed as Werkzeug
    parses it (werkzeug.formparser, _parse_urlencoded), down to a body that is not UTF-8 being an
    empty form. Of the URL Authlib reads only the scheme and host (InsecureTransportError), taken
    as Flask takes them (get_host, with the app's TRUSTED_HOSTS); this path serves fixed paths."""

    def __init__(self, environ: dict[str, Any], *, trusted_hosts: list[str] | None) -> None:
        url = f"{environ['wsgi.url_scheme']}://{get_host(environ, trusted_hosts)}{environ.get('SCRIPT_NAME', '')}"
        super().__init__(environ["REQUEST_METHOD"], f"{url}{environ['PATH_INFO']}")
        # Set here, not passed: OAuth2Request tests `headers or {}`, which counts every environ key.
        self.headers = EnvironHeaders(environ)
        try:
            form = MultiDict(parse_qsl(environ["gatehouse.body"].decode(), keep_blank_values=True,
                                       errors="werkzeug.url_quote"))
        except ValueError:
            form = MultiDict()
        self._form = form
        self.payload = FormPayload(form)

    @property
    def args(self) -> MultiDict:
        return MultiDict()

    @property
    def form(self) -> MultiDict:
        return self._form


class _NotHere(Exception):
    """The request is not one this path serves after all: Flask takes it."""


def _served(handler: Callable[[dict[str, Any]], Answer], environ: dict[str, Any]) -> Answer:
    """The handler's answer, with the server answering in WSGI parts meanwhile (and only meanwhile:
    a request handed on to Flask gets Flask responses); 503 temporarily_unavailable, as the Flask
    views answer it (oauth/endpoints.py), when the database failed it."""
    answering = answering_in_wsgi.set(True)
    try:
        try:
            return handler(environ)
        except DATABASE_UNAVAILABLE as error:
            return _answer(*oauth_server().handle_error_response(None, database_unavailable(error)))
    finally:
        answering_in_wsgi.reset(answering)


def _answer(status_code: int, body: str, headers: list[tuple[str, str]]) -> Answer:
    """What the server answered (oauth/server.py, handle_response), with the status line Werkzeug writes."""
    return f"{status_code} {HTTP_STATUS_CODES[status_code].upper()}", headers, body.encode()


def _is_secure(environ: dict[str, Any]) -> bool:
    # Talisman's test for sending HSTS (flask_talisman, _set_hsts_headers).
    return environ.get("wsgi.url_scheme") == "https" or environ.get("HTTP_X_FORWARDED_PROTO") == "https"


def _hook_headers(app: Flask, method: str, path: str, scheme: str) -> list[tuple[str, str]]:
    """The headers Flask's after-request hooks (Talisman's security headers, ...) add to a JSON
    response of this route over this scheme, less the per-request X-Request-ID."""
    with app.test_request_context(path, method=method, base_url=f"{scheme}://hot-path.invalid"):
        response = app.process_response(app.response_class(mimetype="application/json"))
    return [(name, value) for name, value in response.headers.items()
            if name not in {"Content-Type", "Content-Length", REQUEST_ID_HEADER}]
