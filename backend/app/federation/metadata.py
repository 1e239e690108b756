"""Upstream providers' discovery documents and key sets (JWKS), cached per process.

Every sign-in through a provider needs its discovery document and its signing keys; fetching them
each time would make each sign-in wait on the upstream twice more. Both are kept for an hour. A token
signed with a key id (`kid`) not in the cached set makes us fetch the set again — the provider may
have rotated — but at most once a minute per set: a stream of tokens with made-up key ids must not
turn into a stream of requests to the upstream. Failures are not cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.federation.discovery import fetch_discovery
from app.federation.http import FetchError, GuardedFetcher

DISCOVERY_TTL = 3600
JWKS_TTL = 3600
# At most one refetch of a key set per this many seconds for an unknown kid.
JWKS_REFETCH_INTERVAL = 60


@dataclass
class _Cached:
    value: Any
    fetched_at: float


def _key_ids(jwks: dict[str, Any]) -> set[str]:
    return {key["kid"] for key in jwks["keys"] if isinstance(key, dict) and isinstance(key.get("kid"), str)}


class UpstreamMetadata:
    """Discovery documents and key sets of upstream providers, fetched through the guarded fetcher."""

    def __init__(self, fetcher: GuardedFetcher, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetcher = fetcher
        self._clock = clock
        self._discovery: dict[tuple[str, str | None], _Cached] = {}
        self._jwks: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def discovery(self, *, issuer: str, discovery_url: str | None = None) -> dict[str, Any]:
        """The provider's discovery document (checked as fetch_discovery does), at most DISCOVERY_TTL old.

        Raises:
            FetchError: as fetch_discovery.
        """
        key = (issuer, discovery_url)
        with self._lock:
            cached = self._discovery.get(key)
            if cached is not None and self._clock() - cached.fetched_at < DISCOVERY_TTL:
                return cached.value
        document = fetch_discovery(self._fetcher, issuer=issuer, discovery_url=discovery_url)
        with self._lock:
            self._discovery[key] = _Cached(document, self._clock())
        return document

    def jwks(self, uri: str, *, kid: str | None = None) -> dict[str, Any]:
        """The key set at `uri`, at most JWKS_TTL old; fetched again when it lacks `kid`, unless it was
        fetched less than JWKS_REFETCH_INTERVAL ago (then the cached set comes back, still without `kid`).

        Raises:
            FetchError: the set could not be fetched, or is not a JWK Set (RFC 7517 §5).
        """
        with self._lock:
            cached = self._jwks.get(uri)
            now = self._clock()
            if cached is not None:
                age = now - cached.fetched_at
                fresh = age < JWKS_TTL and (kid is None or kid in _key_ids(cached.value))
                if fresh or age < JWKS_REFETCH_INTERVAL:
                    return cached.value
        response = self._fetcher.fetch(uri)
        if response.status != 200:
            raise FetchError(f"{uri} answered HTTP {response.status}, not a key set")
        jwks = response.json()
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise FetchError(f"{uri} is not a JWK Set (an object with a keys array)")
        with self._lock:
            self._jwks[uri] = _Cached(jwks, self._clock())
        return jwks
