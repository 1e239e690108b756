"""fetch_discovery: OpenID Connect Discovery 1.0 documents, through the guarded fetcher."""

from __future__ import annotations

import pytest

from app.federation.discovery import discovery_url_for, fetch_discovery
from app.federation.http import FetchError, GuardedFetcher

FETCHER = GuardedFetcher(allow_private_networks=True, require_https=False)


def test_fetch_discovery_returns_document_whose_issuer_is_identical(upstream):
    served = upstream.serve_discovery()

    assert fetch_discovery(FETCHER, issuer=upstream.url) == served


def test_fetch_discovery_of_issuer_with_path_appends_well_known_after_it(upstream):
    """Discovery 1.0 §4: the well-known path follows the issuer's path, its terminating "/" removed."""
    issuer = f"{upstream.url}/tenant-a/"
    upstream.serve_discovery(issuer, path="/tenant-a/.well-known/openid-configuration")

    assert fetch_discovery(FETCHER, issuer=issuer)["issuer"] == issuer
    assert discovery_url_for(issuer) == f"{upstream.url}/tenant-a/.well-known/openid-configuration"


def test_fetch_discovery_reads_discovery_url_override(upstream):
    upstream.serve_discovery(path="/custom/openid-configuration")

    assert fetch_discovery(FETCHER, issuer=upstream.url, discovery_url=f"{upstream.url}/custom/openid-configuration")


@pytest.mark.parametrize("served_issuer", ["{url}/", "{url}/other", "https://attacker.example"],
                         ids=["trailing-slash", "other-path", "other-host"])
def test_fetch_discovery_refuses_document_naming_another_issuer(upstream, served_issuer):
    """Discovery 1.0 §4.3: the issuer in the document MUST be identical to the one used to find it."""
    upstream.serve_discovery(served_issuer.format(url=upstream.url))

    with pytest.raises(FetchError, match="must be identical"):
        fetch_discovery(FETCHER, issuer=upstream.url)


def test_fetch_discovery_refuses_document_without_jwks_uri(upstream):
    upstream.serve_discovery(jwks_uri=None)

    with pytest.raises(FetchError, match="lacks jwks_uri"):
        fetch_discovery(FETCHER, issuer=upstream.url)


@pytest.mark.parametrize(("status", "body"), [(404, b"missing"), (200, b"<html>"), (200, b"[1]")],
                         ids=["not-found", "not-json", "not-an-object"])
def test_fetch_discovery_refuses_what_is_not_a_discovery_document(upstream, status, body):
    upstream.serve("/.well-known/openid-configuration", body, status=status)

    with pytest.raises(FetchError):
        fetch_discovery(FETCHER, issuer=upstream.url)


def test_fetch_discovery_in_production_refuses_loopback_issuer(upstream):
    upstream.serve_discovery()
    production = GuardedFetcher(allow_private_networks=False, require_https=False)

    with pytest.raises(FetchError, match="private, loopback or link-local"):
        fetch_discovery(production, issuer=upstream.url)
    assert upstream.received == []
