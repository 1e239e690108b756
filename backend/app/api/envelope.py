"""The management API's response envelope (DESIGN.md) and its error handlers.

Every /api response, success or error, has the same top-level shape. The
handlers below render errors from anywhere (our AppErrors, marshmallow,
werkzeug, Flask-Limiter, uncaught exceptions) as envelopes, for /api paths only.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, jsonify, request
from flask_limiter import RateLimitExceeded
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from app import errors
from app.database import DATABASE_UNAVAILABLE
from app.extensions import limiter
from app.security.request_id import current_request_id

VERSION = "1.0"
log = logging.getLogger(__name__)

# werkzeug exceptions we map to an error type by status.
_HTTP_TYPES = {
    400: "BAD_REQUEST", 401: "AUTHENTICATION_ERROR", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR", 429: "RATE_LIMITED",
}


def ok(data: Any = None, *, message: str = "OK", status: int = 200, meta: dict | None = None) -> Response:
    body = {"version": VERSION, "success": True, "code": status, "message": message,
            "request_id": current_request_id(), "data": data if data is not None else {},
            "meta": meta or {}}
    response = jsonify(body)
    response.status_code = status
    return response


def created(data: Any, *, message: str = "Created.") -> Response:
    return ok(data, message=message, status=201)


def no_store(response: Response) -> Response:
    """For a response whose body carries a credential (a session token, a client secret): like a token
    response (RFC 6749 §5.1), never cached."""
    response.headers["Cache-Control"] = "no-store"
    return response


def page(items: list[Any], *, page: int, per_page: int, total: int, message: str = "OK") -> Response:
    """One page of a list, with `meta` carrying page, per_page and total (DESIGN.md)."""
    return ok(items, message=message, meta={"page": page, "per_page": per_page, "total": total})


def error_response(status: int, error_type: str, message: str, *, details: dict | None = None,
                   headers: dict[str, str] | None = None, data: Any = None) -> Response:
    body: dict[str, Any] = {"version": VERSION, "success": False, "code": status, "message": message,
                            "request_id": current_request_id(),
                            "error": {"type": error_type, "details": details or {}}}
    if data is not None:
        body["data"] = data
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _from_app_error(err: errors.AppError) -> Response:
    return error_response(err.status, err.type, err.message, details=err.details, headers=err.headers)


def _from_validation_error(err: ValidationError) -> Response:
    details = err.messages if isinstance(err.messages, dict) else {"_schema": err.messages}
    return error_response(422, "VALIDATION_ERROR", "The request has invalid fields.", details=details)


def from_http_exception(err: HTTPException) -> Response:
    headers = {}
    if isinstance(err, RateLimitExceeded):
        # RFC 6585 §4: a 429 MAY say how long to wait; ours say it on pages and in the API alike.
        headers["Retry-After"] = str(_seconds_until_limit_resets())
    if not is_api_request():
        response = err.get_response()
        response.headers.update(headers)
        return response
    status = err.code or 500
    if isinstance(err, RateLimitExceeded):
        message = "Too many requests; slow down and retry later."
    else:
        message = err.description or "Error."
        if status == 405 and err.valid_methods:
            headers["Allow"] = ", ".join(sorted(err.valid_methods))
        if status == 401 and err.www_authenticate:
            headers["WWW-Authenticate"] = str(err.www_authenticate[0])
    return error_response(status, _HTTP_TYPES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST"),
                          message, headers=headers)


def _seconds_until_limit_resets() -> int:
    breached = limiter.current_limit
    return max(1, int(breached.reset_at - time.time())) if breached else 60


def _from_database_unavailable(err: Exception) -> Response | HTTPException:
    """The database is down (app.database.DATABASE_UNAVAILABLE): 503, in the envelope under /api and
    as an HTML error page elsewhere (the protocol endpoints answer theirs in oauth/endpoints.py)."""
    # The exception's class only: its text may carry the statement's parameters.
    log.warning("database unavailable on %s %s: %s", request.method, request.path, type(err).__name__)
    if not is_api_request():
        return ServiceUnavailable()
    return error_response(503, "SERVICE_UNAVAILABLE", "The database is unavailable; retry later.")


def _from_unhandled(err: Exception) -> Response | tuple[str, int]:
    log.exception("unhandled exception on %s %s", request.method, request.path)
    if not is_api_request():
        return "Internal Server Error", 500
    return error_response(500, "INTERNAL_ERROR", "Internal server error.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(errors.AppError, _from_app_error)
    app.register_error_handler(ValidationError, _from_validation_error)
    app.register_error_handler(HTTPException, from_http_exception)
    for unavailable in DATABASE_UNAVAILABLE:
        app.register_error_handler(unavailable, _from_database_unavailable)
    app.register_error_handler(Exception, _from_unhandled)
