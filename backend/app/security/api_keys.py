"""Personal API keys: their format, the header they travel in, and the scopes they may hold.

A leaf module: services.api_keys stores and checks keys with it, api/context.py reads the header,
the schemas and the OpenAPI document state the scope catalogue from it.

A key reads `ghk_<prefix>_<secret>`: `ghk_` tells a scanner (and a person) what leaked, the prefix
(12 hex characters, public, stored in the clear) finds the key's row, and the secret (256 random
bits) proves it. The whole key is stored as its SHA-256 only, and compared in constant time.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from app.security.tokens import hash_token, new_token

HEADER = "X-API-Key"
KEY_PREFIX = "ghk_"
PREFIX_LENGTH = 12
_KEY_FORMAT = re.compile(rf"{KEY_PREFIX}(?P<prefix>[0-9a-f]{{{PREFIX_LENGTH}}})_[A-Za-z0-9_-]{{43}}")
# The furthest expiry a key may be given, in days (a key without one never expires).
MAX_EXPIRY_DAYS = 3650
# Query parameters a client may have put a key in; a request carrying one is refused, not served.
QUERY_PARAMETER_NAMES = frozenset({"api_key", "apikey", "x-api-key", "x_api_key"})

# The scopes a personal API key may hold: the one catalogue (README and the OpenAPI document show it).
PROFILE_READ = "profile:read"
ORGANIZATIONS_READ = "organizations:read"
ORGANIZATIONS_WRITE = "organizations:write"
SCOPES: dict[str, str] = {
    PROFILE_READ: "Read your own profile and linked identities.",
    ORGANIZATIONS_READ: "List your organizations and read what your role there lets you see: the organization, "
                        "members, roles, invitations, OAuth clients, SSO connections, audit trail.",
    ORGANIZATIONS_WRITE: "Create organizations and change what your role there lets you change (members, roles, "
                         "invitations, OAuth clients, SSO connections, settings); never delete an organization.",
}


@dataclass(frozen=True)
class NewApiKey:
    # The key itself: shown to its owner once, never stored.
    key: str
    prefix: str
    key_hash: str


def generate_key() -> NewApiKey:
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    key = f"{KEY_PREFIX}{prefix}_{new_token()}"
    return NewApiKey(key=key, prefix=prefix, key_hash=hash_token(key))


def key_prefix(presented: str) -> str | None:
    """The public prefix of a well-formed key, or None when `presented` is not one."""
    match = _KEY_FORMAT.fullmatch(presented)
    return match["prefix"] if match else None


def looks_like_key(value: str) -> bool:
    """Whether `value` may be a key (or part of one): it starts with the key marker."""
    return value.startswith(KEY_PREFIX)
