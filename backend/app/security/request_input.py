"""What a request may carry, checked once at the edge, before any view, service or database sees it.

A string reaches PostgreSQL from almost any parameter (a client_id, an email, a filter, a path id),
and PostgreSQL refuses two things a client can send: the NUL character in text, and a lone UTF-16
surrogate (which JSON's \\uD800 escapes decode to) that cannot be encoded as UTF-8 at all. Both are
refused here, in every query parameter, form field, path segment, JSON member (names too, at any
depth) and HTTP Basic credential. JSON nesting is bounded too: a body of a few kilobytes nested a
thousand deep would otherwise exhaust the parser's recursion. Each kind of endpoint renders the
refusal in its own format (api/envelope.py, oauth/endpoints.py; pages get a plain 400).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

from flask import Flask, request
from werkzeug.exceptions import BadRequest

# U+0000 (PostgreSQL text cannot hold it) and the UTF-16 surrogates (not encodable as UTF-8).
REFUSED_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
# Deeper than any body the API accepts (a client's JWKS, the deepest, is 4 levels).
MAX_JSON_DEPTH = 32
# RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E; everything else is percent-encoded.
_DESCRIPTION_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\%')
MAX_SHOWN_LENGTH = 64
FORM_MIMETYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


class RefusedInput(BadRequest):
    """A request carrying a value this server cannot store or parse (400)."""


def shown(value: str) -> str:
    """`value`, sent by a client, as an error message may quote it: cut to MAX_SHOWN_LENGTH characters,
    with every character outside RFC 6749 §5.2's error_description set (a quote, a backslash, a
    control character, DEL, anything non-ASCII) and `%` percent-encoded as UTF-8. Authlib refuses to
    build an error whose description holds any of them, so every message that quotes input uses this."""
    cut = value[:MAX_SHOWN_LENGTH]
    return quote(cut, safe=_DESCRIPTION_SAFE, errors="surrogatepass") + ("..." if len(value) > len(cut) else "")


def has_refused_character(value: str) -> bool:
    return REFUSED_CHARACTERS.search(value) is not None


def check_request_input() -> None:
    """Refuse this request if any of its values holds a refused character or its JSON is too deep.

    Raises:
        RefusedInput: naming where the value is (its name quoted with `shown`).
    """
    checked = request._get_current_object()  # once: every access through the proxy costs a context lookup
    environ = checked.environ
    if not (environ.get("QUERY_STRING") or "HTTP_AUTHORIZATION" in environ
            or environ.get("CONTENT_LENGTH", "0") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ
            or checked.view_args):
        return  # nothing a value could be in (most GETs)
    for where, value in _request_values():
        if has_refused_character(value):
            raise RefusedInput(f"The {where} holds a character this server does not accept (NUL or a lone surrogate).")


def _request_values() -> Iterator[tuple[str, str]]:
    """Every string of the request a view may read, with where it is."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            yield f"path segment {name}", value
    if request.query_string:  # nothing to parse otherwise
        yield from _named(request.args, "query parameter")
    if request.mimetype in FORM_MIMETYPES:
        yield from _named(request.form, "form field")
    authorization = request.headers.get("Authorization")
    credentials = basic_credentials(authorization) if authorization else None
    if credentials is not None:
        yield "HTTP Basic credentials", credentials
    if request.is_json:
        yield from _json_strings(_parsed_json(), "JSON body", 0)


def _named(values: Any, kind: str) -> Iterator[tuple[str, str]]:
    for name, items in values.lists():
        name = name or ""  # a multipart part may come without a name
        where = f"{kind} {shown(name)}"
        yield where, name
        for item in items:
            yield where, item


def basic_credentials(authorization: str) -> str | None:
    """The `id:secret` of an HTTP Basic Authorization header, decoded as the client encoded it
    (RFC 6749 §2.3.1: form-encoded, then base64), or None for another scheme or unreadable base64
    (the authenticating code refuses those: invalid_client)."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None
    return unquote(decoded, errors="replace")


def _parsed_json() -> Any:
    try:
        # Cached on the request: the view reads this same parse. Malformed JSON is the view's to refuse.
        return request.get_json(silent=True)
    except RecursionError:
        raise RefusedInput(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.") from None


def _json_strings(value: Any, where: str, depth: int) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
        return
    if not isinstance(value, (dict, list)):
        return
    if depth >= MAX_JSON_DEPTH:
        raise RefusedInput(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.")
    if isinstance(value, dict):
        for name, member in value.items():
            inner = f"JSON member {shown(name)}"
            yield inner, name
            yield from _json_strings(member, inner, depth + 1)
    else:
        for item in value:
            yield from _json_strings(item, where, depth + 1)


def init_request_input(app: Flask) -> None:
    app.before_request(check_request_input)
