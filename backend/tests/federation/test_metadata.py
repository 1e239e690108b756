"""UpstreamMetadata: discovery documents and key sets cached per process; an unknown kid refetches
the key set at most once a minute."""

from __future__ import annotations

import pytest

from app.federation.http import FetchError, GuardedFetcher
from app.federation.metadata import DISCOVERY_TTL, JWKS_REFETCH_INTERVAL, JWKS_TTL, UpstreamMetadata
from tests.conftest import Clock

FETCHER = GuardedFetcher(allow_private_networks=True, require_https=False)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metadata(clock) -> UpstreamMetadata:
    return UpstreamMetadata(FETCHER, clock=clock)


def jwks(*kids: str) -> dict:
    return {"keys": [{"kty": "RSA", "kid": kid, "n": "AQAB", "e": "AQAB"} for kid in kids]}


def fetches(upstream, path: str) -> int:
    return sum(1 for r in upstream.received if r.path == path)


def test_discovery_is_fetched_once_within_its_lifetime(upstream, metadata, clock):
    upstream.serve_discovery()
    metadata.discovery(issuer=upstream.url)
    clock.now += DISCOVERY_TTL - 1

    metadata.discovery(issuer=upstream.url)

    assert fetches(upstream, "/.well-known/openid-configuration") == 1


def test_discovery_is_fetched_again_after_its_lifetime(upstream, metadata, clock):
    upstream.serve_discovery()
    metadata.discovery(issuer=upstream.url)
    clock.now += DISCOVERY_TTL

    metadata.discovery(issuer=upstream.url)

    assert fetches(upstream, "/.well-known/openid-configuration") == 2


def test_discovery_failure_is_not_cached(upstream, metadata):
    upstream.serve_discovery("https://other.example")
    with pytest.raises(FetchError):
        metadata.discovery(issuer=upstream.url)
    upstream.serve_discovery()

    assert metadata.discovery(issuer=upstream.url)["issuer"] == upstream.url


def test_jwks_with_known_kid_is_served_from_cache(upstream, metadata, clock):
    upstream.serve("/jwks", jwks("k1"))
    metadata.jwks(f"{upstream.url}/jwks", kid="k1")
    clock.now += JWKS_TTL - 1

    assert metadata.jwks(f"{upstream.url}/jwks", kid="k1") == jwks("k1")
    assert fetches(upstream, "/jwks") == 1


def test_jwks_unknown_kid_refetches_once_the_interval_has_passed(upstream, metadata, clock):
    upstream.serve("/jwks", jwks("k1"))
    metadata.jwks(f"{upstream.url}/jwks")
    upstream.serve("/jwks", jwks("k1", "k2"))
    clock.now += JWKS_REFETCH_INTERVAL

    assert metadata.jwks(f"{upstream.url}/jwks", kid="k2") == jwks("k1", "k2")
    assert fetches(upstream, "/jwks") == 2


def test_jwks_unknown_kids_refetch_at_most_once_per_interval(upstream, metadata, clock):
    upstream.serve("/jwks", jwks("k1"))
    metadata.jwks(f"{upstream.url}/jwks")
    clock.now += JWKS_REFETCH_INTERVAL

    for attempt in range(5):
        metadata.jwks(f"{upstream.url}/jwks", kid=f"made-up-{attempt}")
        clock.now += 1

    assert fetches(upstream, "/jwks") == 2


def test_jwks_is_fetched_again_after_its_lifetime(upstream, metadata, clock):
    upstream.serve("/jwks", jwks("k1"))
    metadata.jwks(f"{upstream.url}/jwks")
    clock.now += JWKS_TTL

    metadata.jwks(f"{upstream.url}/jwks")

    assert fetches(upstream, "/jwks") == 2


@pytest.mark.parametrize("body", [{"keys": "none"}, [1], {"no": "keys"}])
def test_jwks_that_is_not_a_key_set_raises(upstream, metadata, body):
    upstream.serve("/jwks", body)

    with pytest.raises(FetchError, match="not a JWK Set"):
        metadata.jwks(f"{upstream.url}/jwks")
