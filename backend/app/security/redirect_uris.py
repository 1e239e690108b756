"""Which redirect URIs a client may register (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §2.6, §4.1.3).

Used by the schemas (per-field 422 messages) and by services.client_rules, so no
caller can register a URI the rules refuse.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_REDIRECT_URI_LENGTH = 2000
# RFC 8252 §7.3 and §8.3: native apps may receive the response on a loopback
# interface over plain http; nothing else may (RFC 9700 §2.6).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# RFC 8252 §7.1: a private-use scheme is a reverse domain name the app controls, so it has a dot.
_PRIVATE_USE_SCHEME = re.compile(r"[a-z][a-z0-9+-]*(?:\.[a-z0-9+-]+)+")


def redirect_uri_problem(uri: str) -> str | None:
    """Why `uri` may not be registered as a redirect URI, or None when it may.

    Accepted: https URIs; http URIs on a loopback host (development and native
    apps); private-use reverse-DNS schemes for native apps (com.example.app:/cb).
    Always refused: relative URIs, fragments (RFC 6749 §3.1.2), wildcards
    (redirect URIs are matched exactly, RFC 9700 §4.1.3), user information,
    spaces and non-ASCII characters.
    """
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        return f"Must be at most {MAX_REDIRECT_URI_LENGTH} characters."
    if not uri.isascii() or any(c.isspace() or not c.isprintable() for c in uri):
        return "Must be ASCII without spaces or control characters; percent-encode anything else."
    if "*" in uri:
        return "Must not contain wildcards: each redirect URI is matched exactly, so register every one."
    if "#" in uri:
        return "Must not contain a fragment (RFC 6749 §3.1.2)."
    try:
        parts = urlsplit(uri)
        _ = parts.port  # raises ValueError for a malformed port, e.g. :99999
    except ValueError:
        return "Is not a valid URI."
    if not parts.scheme:
        return "Must be an absolute URI with a scheme, e.g. https://app.example.com/callback."
    if parts.scheme in {"https", "http"}:
        if not parts.hostname:
            return "Must include a host."
        if parts.username is not None or parts.password is not None:
            return "Must not contain user information (user:password@)."
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            return "Must use https; plain http is allowed only on 127.0.0.1, [::1] and localhost."
        return None
    if _PRIVATE_USE_SCHEME.fullmatch(parts.scheme):
        # "com.example.app:/callback" (RFC 8252 §7.1) or "com.example.app://callback". Anything else,
        # e.g. "app.example.com:8080/cb", is far more likely a web URI missing its https://.
        if not (parts.netloc or parts.path.startswith("/")):
            return "After a private-use scheme, write a path starting with /, e.g. com.example.app:/callback."
        return None
    return ("The scheme must be https, http on a loopback host, or a private-use reverse-DNS scheme "
            "(e.g. com.example.app) for a native app.")
