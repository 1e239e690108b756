"""Signing keys parsed once per process: the private key sets that sign our tokens, and the
published key set that verifies our access tokens, with the tokens it has verified."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from joserfc.jwk import KeySet, import_key

from app.services.keys import SigningKey

# A token's JWS header and claims, as the published keys verified them.
Verified = tuple[dict[str, Any], dict[str, Any]]


def one_key_keyset(signing: SigningKey) -> KeySet:
    """A one-key KeySet whose key carries its kid, so joserfc writes `kid` into the JWS header."""
    data = signing.key.as_dict(private=True) | {"kid": signing.kid, "alg": signing.alg, "use": "sig"}
    return KeySet([import_key(data)])


class PrivateKeySets:
    """`one_key_keyset` of each signing key, made once: importing a private key costs more than signing."""

    def __init__(self) -> None:
        self._by_kid: dict[str, KeySet] = {}
        self._lock = threading.Lock()

    def of(self, signing: SigningKey) -> KeySet:
        with self._lock:
            keyset = self._by_kid.get(signing.kid)
            if keyset is None:
                keyset = self._by_kid[signing.kid] = one_key_keyset(signing)
            return keyset


@dataclass
class PublishedKeys:
    """One set of published keys, and the access tokens it has verified (each with its header and claims)."""
    keyset: KeySet
    verified: dict[str, Verified] = field(default_factory=dict)


class VerifiedTokens:
    """The published key set, and the tokens whose signature and typ it has verified: a resource
    server introspects the same token on every request it serves, and verifying it again costs
    more than the rest of an introspection (services.access_tokens checks iss, exp and the denylist
    every time). A key leaving the JWKS takes the tokens verified with it along. At most `kept`
    tokens, the oldest going first. Safe to share between threads."""

    def __init__(self, kept: int = 4096) -> None:
        self.kept = kept
        self._published: PublishedKeys | None = None
        self._kids: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def published(self, kids: tuple[str, ...], load: Callable[[], KeySet]) -> PublishedKeys:
        """The keys published under these kids; `load()` makes their KeySet when they are new."""
        with self._lock:
            if self._published is None or self._kids != kids:
                self._published, self._kids = PublishedKeys(load()), kids
            return self._published

    def keep(self, published: PublishedKeys, token: str, verified: Verified) -> None:
        with self._lock:
            if len(published.verified) >= self.kept:
                published.verified.pop(next(iter(published.verified)))  # the oldest
            published.verified[token] = verified
