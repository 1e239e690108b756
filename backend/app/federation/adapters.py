"""The adapter of each provider kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from app.errors import FederationFailed
from app.federation.github import GitHubAdapter
from app.federation.google import GoogleAdapter
from app.federation.http import GuardedFetcher
from app.federation.metadata import UpstreamMetadata
from app.federation.microsoft import MicrosoftAdapter
from app.federation.oidc import OIDCAdapter
from app.models import IdentityProvider, ProviderKind
from app.models.federation import GitHubSettings, GoogleSettings, MicrosoftSettings, OIDCSettings
from app.security.crypto import FieldCipher
from app.services.identities import VerifiedIdentity
from app.services.identity_providers import decrypt_client_secret

# The ID token claim an organization's OpenID connection reads the person's groups from, unless its
# attribute_mapping names another (Okta, Entra ID and Keycloak all call it "groups").
DEFAULT_GROUPS_CLAIM = "groups"


class Adapter(Protocol):
    """One sign-in's conversation with an upstream provider."""

    def uses_pkce(self) -> bool: ...

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str | None) -> str: ...

    def finish(self, params: Mapping[str, str], *, nonce: str, code_verifier: str | None,
               now: float) -> VerifiedIdentity: ...


def adapter_for(provider: IdentityProvider, *, our_issuer: str, metadata: UpstreamMetadata, fetcher: GuardedFetcher,
                cipher: FieldCipher) -> Adapter:
    """The adapter that signs people in at `provider`.

    Raises:
        FederationFailed: the provider has no client_id, or its client secret cannot be decrypted.
    """
    settings = provider.kind_settings
    if provider.client_id is None:
        raise FederationFailed("not_configured", f"Signing in with {provider.name} is not available.")
    common = dict(client_id=provider.client_id, client_secret=decrypt_client_secret(cipher, provider),
                  scopes=list(provider.scopes), redirect_uri=provider.callback_url(our_issuer), fetcher=fetcher)
    if isinstance(settings, GitHubSettings):
        return GitHubAdapter(base_url=settings.base_url, api_url=settings.api_url, **common)
    if isinstance(settings, GoogleSettings):
        return GoogleAdapter(hosted_domain=settings.hosted_domain, metadata=metadata, **common)
    assert isinstance(settings, (MicrosoftSettings, OIDCSettings))
    # Groups matter only to an organization's own connection (they map to its roles).
    groups_claim = (settings.attribute_mapping or {}).get("groups", DEFAULT_GROUPS_CLAIM) \
        if provider.organization_id is not None else None
    if isinstance(settings, MicrosoftSettings):
        return MicrosoftAdapter(authority=settings.authority, tenant=settings.tenant,
                                allowed_tenants=settings.allowed_tenants, allow_any_tenant=settings.allow_any_tenant,
                                metadata=metadata, groups_claim=groups_claim, **common)
    return OIDCAdapter(issuer=settings.issuer, discovery_url=settings.discovery_url, metadata=metadata,
                       groups_claim=groups_claim, **common)
