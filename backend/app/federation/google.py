"""Signing in with Google, an OpenID provider with rules of its own (Google Identity, "OpenID Connect"):
its ID tokens' `iss` is `https://accounts.google.com` or `accounts.google.com`; an email is proved only by
`email_verified: true`; a provider limited to a Google Workspace domain (`hosted_domain`) requires the
`hd` claim to equal it (the `hd` authorization parameter is only a hint to Google's account chooser)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.errors import FederationFailed
from app.federation.oidc import OIDCAdapter, check_audience, check_nonce, check_times

GOOGLE_ISSUER = "https://accounts.google.com"
GOOGLE_ISSUERS = frozenset({GOOGLE_ISSUER, "accounts.google.com"})
GOOGLE_DISCOVERY_URL = f"{GOOGLE_ISSUER}/.well-known/openid-configuration"


def check_hosted_domain(claims: Mapping[str, Any], hosted_domain: str | None) -> None:
    if hosted_domain is not None and str(claims.get("hd", "")).lower() != hosted_domain:
        raise FederationFailed("hd_mismatch", "Only accounts of the organization's Google Workspace domain may "
                                              "sign in here.")


class GoogleAdapter(OIDCAdapter):
    def __init__(self, *, hosted_domain: str | None, discovery_url: str = GOOGLE_DISCOVERY_URL, **common: Any) -> None:
        super().__init__(issuer=GOOGLE_ISSUER, discovery_url=discovery_url, **common)
        self.hosted_domain = hosted_domain

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str | None) -> str:
        url = super().authorization_url(state=state, nonce=nonce, code_verifier=code_verifier)
        return url + (f"&hd={self.hosted_domain}" if self.hosted_domain else "")

    def check_claims(self, claims: Mapping[str, Any], *, now: float, nonce: str) -> None:
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise FederationFailed("id_token_iss", "The ID token was issued by another identity provider.")
        check_audience(claims, self.client_id)
        check_times(claims, now)
        check_nonce(claims, nonce)
        check_hosted_domain(claims, self.hosted_domain)
