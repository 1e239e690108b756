"""Issuing JWT access tokens (RFC 9068); services.access_tokens verifies them."""

from __future__ import annotations

import json
import threading
from typing import Any

from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet, import_key
from joserfc.jws import extract_compact

from app.config import Settings
from app.services.grants import new_refresh_token
from app.services.keys import KeyStore, SigningKey

ACCESS_TOKEN_ALG = "RS256"
_keyset_lock = threading.Lock()
_private_keysets: dict[str, KeySet] = {}


def private_keyset(signing: SigningKey) -> KeySet:
    """A one-key KeySet whose key carries its kid, so joserfc writes `kid` into the JWS header."""
    with _keyset_lock:
        keyset = _private_keysets.get(signing.kid)
        if keyset is None:
            data = signing.key.as_dict(private=True) | {"kid": signing.kid, "alg": signing.alg, "use": "sig"}
            keyset = _private_keysets[signing.kid] = KeySet([import_key(data)])
        return keyset


class AccessTokenGenerator(JWTBearerTokenGenerator):
    """Authlib's RFC 9068 generator, signing with the keyring's active key and
    deciding who gets a refresh token."""

    def __init__(self, settings: Settings, keys: KeyStore) -> None:
        super().__init__(issuer=settings.ISSUER, alg=ACCESS_TOKEN_ALG,
                         refresh_token_generator=lambda **_: new_refresh_token(),
                         expires_generator=self._expires_in)
        self.settings = settings
        self.keys = keys

    def _expires_in(self, client, grant_type: str) -> int:
        return client.access_token_lifetime or self.settings.ACCESS_TOKEN_LIFETIME

    def get_jwks(self) -> KeySet:
        return private_keyset(self.keys.signing_key(ACCESS_TOKEN_ALG))

    def refresh_allowed(self, client, scope: str | None) -> bool:
        """Refresh tokens only with offline_access (OIDC Core §11), or for
        first-party clients when the operator allows it."""
        if not client.check_grant_type("refresh_token"):
            return False
        scopes = (scope or "").split()
        return "offline_access" in scopes or (
            client.first_party and self.settings.FIRST_PARTY_REFRESH_WITHOUT_OFFLINE_ACCESS)

    def generate(self, grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        include_refresh_token = include_refresh_token and self.refresh_allowed(client, scope)
        return super().generate(grant_type, client, user=user, scope=scope, expires_in=expires_in,
                                include_refresh_token=include_refresh_token)


def unverified_claims(token: str) -> dict[str, Any]:
    """Claims of a JWT we just signed ourselves (no need to verify it again)."""
    return json.loads(extract_compact(token.encode()).payload)


