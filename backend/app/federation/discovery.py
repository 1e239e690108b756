"""OpenID Provider discovery documents (OpenID Connect Discovery 1.0) and SAML IdP metadata, fetched through
the guarded fetcher."""

from __future__ import annotations

from typing import Any

from app.federation.http import FetchError, GuardedFetcher
from app.federation.saml import idp_settings_from_metadata

WELL_KNOWN_PATH = "/.well-known/openid-configuration"
# Discovery 1.0 §3 lists more as REQUIRED; these are the ones a sign-in cannot work without.
REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


def discovery_url_for(issuer: str) -> str:
    """Discovery 1.0 §4: the issuer without a terminating "/", then /.well-known/openid-configuration."""
    return issuer.rstrip("/") + WELL_KNOWN_PATH


def fetch_discovery(fetcher: GuardedFetcher, *, issuer: str, discovery_url: str | None = None) -> dict[str, Any]:
    """The provider's discovery document, fetched from `discovery_url` (default: derived from the issuer).

    Raises:
        FetchError: not fetched (see GuardedFetcher.fetch), not a JSON object, its `issuer` is not exactly
            `issuer` (Discovery 1.0 §4.3: the value returned MUST be identical to the issuer URL used), or
            an endpoint a sign-in needs is missing.
    """
    url = discovery_url or discovery_url_for(issuer)
    response = fetcher.fetch(url)
    if response.status != 200:
        raise FetchError(f"{url} answered HTTP {response.status}, not a discovery document")
    document = response.json()
    if not isinstance(document, dict):
        raise FetchError(f"{url} is not a discovery document (not a JSON object)")
    if document.get("issuer") != issuer:
        raise FetchError(f"the discovery document at {url} names the issuer {document.get('issuer')!r}, "
                         f"not {issuer!r}; they must be identical")
    missing = [name for name in REQUIRED_ENDPOINTS if not isinstance(document.get(name), str)]
    if missing:
        raise FetchError(f"the discovery document at {url} lacks {', '.join(missing)}")
    return document


class UpstreamChecks:
    """What services.identity_providers asks of an administrator's upstream settings, answered through
    the guarded fetcher: a problem to report on the field, or None."""

    def __init__(self, fetcher: GuardedFetcher) -> None:
        self._fetcher = fetcher

    def url_problem(self, url: str) -> str | None:
        return self._fetcher.url_problem(url)

    def issuer_problem(self, *, issuer: str, discovery_url: str | None) -> str | None:
        try:
            fetch_discovery(self._fetcher, issuer=issuer, discovery_url=discovery_url)
        except FetchError as err:
            return str(err)
        return None

    def saml_idp_settings(self, *, metadata_xml: str | None = None, metadata_url: str | None = None
                          ) -> dict[str, Any]:
        """The IdP fields read from its metadata, given as XML or fetched from `metadata_url`.

        Raises:
            ValueError: not fetched, or not usable metadata; the message says why.
        """
        if metadata_url is not None:
            try:
                response = self._fetcher.fetch(metadata_url)
            except FetchError as err:
                raise ValueError(str(err)) from None
            if response.status != 200:
                raise ValueError(f"{metadata_url} answered HTTP {response.status}, not SAML metadata")
            return idp_settings_from_metadata(response.body)
        return idp_settings_from_metadata(metadata_xml or "")
