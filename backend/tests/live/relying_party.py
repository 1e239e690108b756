"""What a relying party does with Gatehouse, shared by the live tests: discovery and JWKS,
id_token and access token validation with joserfc, and Authlib's OAuth2Session."""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from tests.live.conftest import LiveClient

TIMEOUT = 10


@dataclass(frozen=True)
class Provider:
    issuer: str  # the URL the relying party was configured with
    metadata: dict[str, Any]
    keys: KeySet

    def __getitem__(self, name: str) -> Any:
        return self.metadata[name]


def discover(issuer: str) -> Provider:
    """Discovery (OIDC Discovery 1.0 §4) and the JWKS it points to, fetched over HTTP."""
    response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    metadata = response.json()
    jwks = requests.get(metadata["jwks_uri"], timeout=TIMEOUT)
    assert jwks.status_code == 200, jwks.text
    return Provider(issuer=issuer, metadata=metadata, keys=KeySet.import_key_set(jwks.json()))


def left_half_hash(value: str) -> str:
    """OIDC Core §3.1.3.6 at_hash for RS256: base64url of the left half of SHA-256."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def verify_id_token(provider: Provider, id_token: str, *, client_id: str, nonce: str,
                    access_token: str) -> dict[str, Any]:
    """What OIDC Core §3.1.3.7 asks of a relying party, with joserfc."""
    token = jwt.decode(id_token, provider.keys, algorithms=provider["id_token_signing_alg_values_supported"])
    assert token.header["kid"] in {k.kid for k in provider.keys.keys}
    JWTClaimsRegistry(
        iss={"essential": True, "value": provider["issuer"]},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
        at_hash={"essential": True, "value": left_half_hash(access_token)},
    ).validate(token.claims)
    return token.claims


def verify_access_token(provider: Provider, access_token: str, *, client_id: str) -> dict[str, Any]:
    """Offline validation by a resource server (RFC 9068 §4): typ at+jwt, signature from the JWKS, iss, exp."""
    token = jwt.decode(access_token, provider.keys, algorithms=["RS256", "ES256"])
    assert token.header["typ"].lower() in {"at+jwt", "application/at+jwt"}
    JWTClaimsRegistry(
        iss={"essential": True, "value": provider["issuer"]},
        client_id={"essential": True, "value": client_id},
        exp={"essential": True}, iat={"essential": True}, jti={"essential": True}, sub={"essential": True},
    ).validate(token.claims)
    assert token.claims["exp"] > time.time()
    return token.claims


def oauth_session(client: LiveClient, **kwargs: Any) -> OAuth2Session:
    """Authlib's client for `client`: client_secret_basic with a secret, auth method none without; PKCE S256."""
    if client.client_secret is None:
        kwargs.setdefault("token_endpoint_auth_method", "none")
    kwargs.setdefault("scope", client.scope)
    return OAuth2Session(client.client_id, client.client_secret, redirect_uri=client.redirect_uri,
                         code_challenge_method="S256", timeout=TIMEOUT, **kwargs)


def capture_token_responses(session: OAuth2Session) -> list[requests.Response]:
    """The raw token endpoint responses, for headers the library does not surface."""
    seen: list[requests.Response] = []

    def hook(response: requests.Response) -> requests.Response:
        seen.append(response)
        return response
    session.register_compliance_hook("access_token_response", hook)
    session.register_compliance_hook("refresh_token_response", hook)
    return seen
