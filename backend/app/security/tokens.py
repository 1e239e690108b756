"""High-entropy secrets the server generates: make them, hash them, compare them.

They carry 256 bits of randomness, so SHA-256 is enough at rest; a slow hash
would add nothing but latency (DESIGN.md, "Secrets at rest").
"""

import hashlib
import hmac
import secrets


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token with `nbytes` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    """SHA-256 hex digest, the form in which tokens are stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return hmac.compare_digest(hash_token(token), stored_hash)
