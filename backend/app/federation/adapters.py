"""The adapter of each provider kind: generic OpenID Connect and GitHub so far."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from app.errors import FederationFailed
from app.federation.github import GitHubAdapter
from app.federation.http import GuardedFetcher
from app.federation.metadata import UpstreamMetadata
from app.federation.oidc import OIDCAdapter
from app.models import IdentityProvider, ProviderKind
from app.models.federation import GitHubSettings, OIDCSettings
from app.security.crypto import FieldCipher
from app.services.identities import VerifiedIdentity
from app.services.identity_providers import decrypt_client_secret


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
        FederationFailed: no adapter for its kind yet (google, microsoft).
    """
    settings = provider.kind_settings
    if provider.client_id is not None:
        secret = decrypt_client_secret(cipher, provider)
        if isinstance(settings, OIDCSettings):
            return OIDCAdapter(issuer=settings.issuer, discovery_url=settings.discovery_url,
                               client_id=provider.client_id, client_secret=secret, scopes=list(provider.scopes),
                               redirect_uri=provider.callback_url(our_issuer), metadata=metadata, fetcher=fetcher)
        if isinstance(settings, GitHubSettings):
            return GitHubAdapter(base_url=settings.base_url, api_url=settings.api_url, client_id=provider.client_id,
                                 client_secret=secret, scopes=list(provider.scopes),
                                 redirect_uri=provider.callback_url(our_issuer), fetcher=fetcher)
    raise FederationFailed("unsupported_kind", f"Signing in with {provider.name} is not available yet.")
