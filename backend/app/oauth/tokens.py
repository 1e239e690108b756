"""Issuing JWT access tokens (RFC 9068); services.access_tokens verifies them."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from app.config import Settings
from app.services.grants import new_refresh_token
from app.services.keys import KeyStore
from app.stores.keysets import PrivateKeySets

ACCESS_TOKEN_ALG = "RS256"

# The organization claims of the token being issued. Authlib calls get_extra_claims with
# (client, grant_type, user, scope) only, so the grant sets them around its token response
# (`issuing_in_organization`). A ContextVar, not an attribute of the shared generator: each
# request thread (or task) sees only its own value, and the value is reset when the grant ends.
_organization_claims: ContextVar[dict[str, Any] | None] = ContextVar("organization_claims", default=None)


@contextmanager
def issuing_in_organization(claims: dict[str, Any]) -> Iterator[None]:
    """Issue the tokens made inside this block (access token and ID token) with these organization claims."""
    reset = _organization_claims.set(claims)
    try:
        yield
    finally:
        _organization_claims.reset(reset)


def current_organization_claims() -> dict[str, Any]:
    """The organization claims of the token being issued (empty outside an organization)."""
    return dict(_organization_claims.get() or {})


class AccessTokenGenerator(JWTBearerTokenGenerator):
    """Authlib's RFC 9068 generator, signing with the keyring's active key and
    deciding who gets a refresh token."""

    def __init__(self, settings: Settings, keys: KeyStore, private_keysets: PrivateKeySets) -> None:
        super().__init__(issuer=settings.ISSUER, alg=ACCESS_TOKEN_ALG,
                         refresh_token_generator=lambda **_: new_refresh_token(),
                         expires_generator=self._expires_in)
        self.settings = settings
        self.keys = keys
        self.private_keysets = private_keysets

    def _expires_in(self, client, grant_type: str) -> int:
        return client.access_token_lifetime or self.settings.ACCESS_TOKEN_LIFETIME

    def get_jti(self, client, grant_type: str, user, scope: str | None) -> str:
        # 128 random bits from one os.urandom call; Authlib's default draws 16 characters one by one.
        return secrets.token_urlsafe(16)

    def get_jwks(self) -> KeySet:
        return self.private_keysets.of(self.keys.signing_key(ACCESS_TOKEN_ALG))

    def refresh_allowed(self, client, scope: str | None) -> bool:
        """Refresh tokens only with offline_access (OIDC Core §11), or for
        first-party clients when the operator allows it."""
        if not client.check_grant_type("refresh_token"):
            return False
        scopes = (scope or "").split()
        return "offline_access" in scopes or (
            client.first_party and self.settings.FIRST_PARTY_REFRESH_WITHOUT_OFFLINE_ACCESS)

    def get_extra_claims(self, client, grant_type: str, user, scope: str | None) -> dict[str, Any]:
        # org_id, org_slug, org_name and org_roles, but deliberately no permissions claim: the
        # management API re-reads the membership on every call, so a demotion takes effect at
        # once, whereas permissions copied into a token would stay stale for its whole lifetime.
        return current_organization_claims()

    def generate(self, grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        include_refresh_token = include_refresh_token and self.refresh_allowed(client, scope)
        return super().generate(grant_type, client, user=user, scope=scope, expires_in=expires_in,
                                include_refresh_token=include_refresh_token)


def unverified_claims(token: str) -> dict[str, Any]:
    """Claims of a JWT we just signed ourselves (no need to verify it again)."""
    return json.loads(extract_compact(token.encode()).payload)


