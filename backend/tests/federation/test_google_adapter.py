"""The Google adapter against a local server serving Google's documented discovery document and ID tokens
(its issuer is Google's; the adapter is pointed at the server through its discovery URL)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.errors import FederationFailed
from app.federation.google import GOOGLE_ISSUER, GoogleAdapter
from app.federation.http import GuardedFetcher
from app.federation.metadata import UpstreamMetadata
from tests.upstream import OpenIDProviderStandIn

DISCOVERY_PATH = "/google/.well-known/openid-configuration"
NONCE = "n-0123456789"


@pytest.fixture
def google() -> Iterator[OpenIDProviderStandIn]:
    stand_in = OpenIDProviderStandIn()
    stand_in.issuer = GOOGLE_ISSUER
    stand_in.server.serve_discovery(issuer=GOOGLE_ISSUER, path=DISCOVERY_PATH,
                                    userinfo_endpoint=f"{stand_in.url}/userinfo",
                                    code_challenge_methods_supported=["plain", "S256"])
    yield stand_in
    stand_in.close()


def adapter(google: OpenIDProviderStandIn, hosted_domain: str | None = "corp.example") -> GoogleAdapter:
    fetcher = GuardedFetcher(allow_private_networks=True, require_https=False)
    return GoogleAdapter(hosted_domain=hosted_domain, discovery_url=google.url + DISCOVERY_PATH,
                         metadata=UpstreamMetadata(fetcher), fetcher=fetcher,
                         client_id=OpenIDProviderStandIn.CLIENT_ID, client_secret="secret",
                         scopes=["openid", "email"], redirect_uri="https://gatehouse.example/federation/x/callback")


def finish(google: OpenIDProviderStandIn, hosted_domain: str | None = "corp.example", **claims):
    google.issue(nonce=NONCE, **claims)
    return adapter(google, hosted_domain).finish({"code": "c"}, nonce=NONCE, code_verifier=None, now=time.time())


@pytest.mark.parametrize("iss", ["https://accounts.google.com", "accounts.google.com"])
def test_google_accepts_both_issuer_forms(google, iss):
    identity = finish(google, iss=iss, hd="corp.example")
    assert (identity.subject, identity.email, identity.email_verified) == ("corp-user-1", "pat@corp.example", True)


def test_google_hd_mismatch_is_refused(google):
    with pytest.raises(FederationFailed) as refused:
        finish(google, hd="gmail-lookalike.example")
    assert refused.value.reason == "hd_mismatch"


def test_google_missing_hd_is_refused_when_a_domain_is_required(google):
    with pytest.raises(FederationFailed) as refused:
        finish(google)
    assert refused.value.reason == "hd_mismatch"


def test_google_without_hosted_domain_accepts_any_account(google):
    assert finish(google, hosted_domain=None).subject == "corp-user-1"


def test_google_unverified_email_is_not_proved(google):
    assert finish(google, hd="corp.example", email_verified=False).email_verified is False


def test_google_other_issuer_is_refused(google):
    with pytest.raises(FederationFailed) as refused:
        finish(google, iss="https://accounts.google.com.evil.example", hd="corp.example")
    assert refused.value.reason == "id_token_iss"


def test_google_authorization_url_carries_the_hd_hint(google):
    url = adapter(google).authorization_url(state="s", nonce=NONCE, code_verifier=None)
    assert url.startswith(f"{google.url}/authorize?") and url.endswith("&hd=corp.example")
