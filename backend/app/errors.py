"""Application errors: a type, an HTTP status, a message and details.

Services raise these; the API layer renders them in the envelope. Nothing here
imports Flask.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    type = "INTERNAL_ERROR"
    status = 500
    message = "Internal server error."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details or {}
        self.headers = headers or {}


class BadRequest(AppError):
    type, status, message = "BAD_REQUEST", 400, "Bad request."


class ValidationFailed(AppError):
    type, status, message = "VALIDATION_ERROR", 422, "The request has invalid fields."


class AuthenticationRequired(AppError):
    type, status, message = "AUTHENTICATION_ERROR", 401, "Authentication required."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # RFC 9110 §15.5.2: a 401 response carries WWW-Authenticate.
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="gatehouse"')


class InvalidCredentials(AuthenticationRequired):
    message = "Invalid email or password."


class PermissionDenied(AppError):
    type, status, message = "PERMISSION_DENIED", 403, "You do not have permission to do this."


class AccountSuspended(PermissionDenied):
    message = "This account is suspended."


class RegistrationClosed(PermissionDenied):
    message = "Registration is closed: accounts are created by invitation."


class NotFound(AppError):
    type, status, message = "NOT_FOUND", 404, "Not found."


class Conflict(AppError):
    type, status, message = "CONFLICT", 409, "Conflict."


class AccountLocked(AppError):
    """Sign-in to this email is locked for the address the attempt came from (services/login_throttle.py)."""
    type, status = "ACCOUNT_LOCKED", 423
    message = "Too many failed sign-in attempts from your address; try again later."


class SignInThrottled(AppError):
    """Sign-in to this email is slowed for every address (services/login_throttle.py)."""
    type, status, message = "RATE_LIMITED", 429, "Too many failed sign-in attempts; try again later."


class TooManyRequests(AppError):
    """A budget of this client address is spent; `headers` carry Retry-After (RFC 6585 §4)."""
    type, status, message = "RATE_LIMITED", 429, "Too many requests; slow down and retry later."


class ServiceUnavailable(AppError):
    type, status, message = "SERVICE_UNAVAILABLE", 503, "A dependency is unavailable."


# The closed set of error types a client can see, with their usual status.
ERROR_TYPES: dict[str, int] = {
    "BAD_REQUEST": 400,
    "AUTHENTICATION_ERROR": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "VALIDATION_ERROR": 422,
    "ACCOUNT_LOCKED": 423,
    "RATE_LIMITED": 429,
    "INTERNAL_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
}


class FederationFailed(AppError):
    """A sign-in through an upstream identity provider failed. `reason` is a short code for the audit
    trail; the message is plain and shown to the person."""

    type, status, message = "FEDERATION_FAILED", 400, "The sign-in through the identity provider failed."

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
