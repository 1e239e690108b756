"""X-Request-ID on every request and response (security/headers.py sends it), and in every log line."""

from __future__ import annotations

import logging
import random
import re

from flask import has_request_context, request

HEADER = "X-Request-ID"
# Where a request keeps its id: its WSGI environ, which the response class reads without a context lookup.
ENVIRON_KEY = "gatehouse.request_id"
# An incoming id is echoed only if it is a plain token: no spaces, no control
# characters, nothing that could forge a log line or a header.
_WELL_FORMED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")


def current_request_id() -> str | None:
    """The id of the request being handled (made on first use), or None outside a request."""
    if not has_request_context():
        return None
    return request_id_of(request.environ)


def request_id_of(environ: dict) -> str:
    """The id of the request whose WSGI environ this is, made on first use and kept in it."""
    request_id = environ.get(ENVIRON_KEY)
    if request_id is None:
        request_id = environ[ENVIRON_KEY] = request_id_from(environ.get("HTTP_X_REQUEST_ID", ""))
    return request_id


def request_id_from(incoming: str) -> str:
    """The id of a request that came with `incoming` in its X-Request-ID header (maybe empty)."""
    return incoming if _WELL_FORMED.match(incoming) else new_request_id()


def new_request_id() -> str:
    """A random UUID (RFC 9562 §5.4, version 4) from the process's Mersenne Twister, not the system's
    CSPRNG: a request id only tells requests apart (clients choose their own), and uuid.uuid4()'s
    system call costs several times the whole of this. The random module reseeds itself in every
    forked worker, so workers do not repeat each other's ids."""
    value = random.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48) | (0x4000 << 64) | (0x8000 << 48)
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True
