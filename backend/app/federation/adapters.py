"""The adapter of each provider kind. Only the generic OpenID Connect kind is built so far."""

from __future__ import annotations

from app.errors import FederationFailed
from app.federation.http import GuardedFetcher
from app.federation.metadata import UpstreamMetadata
from app.federation.oidc import OIDCAdapter
from app.models import IdentityProvider, ProviderKind
from app.models.federation import OIDCSettings
from app.security.crypto import FieldCipher
from app.services.identity_providers import decrypt_client_secret


def adapter_for(provider: IdentityProvider, *, our_issuer: str, metadata: UpstreamMetadata, fetcher: GuardedFetcher,
                cipher: FieldCipher) -> OIDCAdapter:
    """The adapter that signs people in at `provider`.

    Raises:
        FederationFailed: no adapter for its kind yet (google, microsoft, github).
    """
    if provider.kind != ProviderKind.OIDC or provider.client_id is None:
        raise FederationFailed("unsupported_kind", f"Signing in with {provider.name} is not available yet.")
    settings = provider.kind_settings
    assert isinstance(settings, OIDCSettings)
    return OIDCAdapter(issuer=settings.issuer, discovery_url=settings.discovery_url, client_id=provider.client_id,
                       client_secret=decrypt_client_secret(cipher, provider), scopes=list(provider.scopes),
                       redirect_uri=provider.callback_url(our_issuer), metadata=metadata, fetcher=fetcher)
