"""What an OAuth client may be: every rule about a client's configuration, in one place.

`configuration_problems` judges a client's complete settings; creation and updates
(services.clients) both run it on the complete resulting settings, so an update can never produce
a client that creation would have refused. The format of each redirect URI (absolute, https except
loopback, no fragment) is also checked by `app.schemas.clients`, which the API and the CLI both load.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from app.config import MAX_CLIENT_ACCESS_TOKEN_LIFETIME
from app.models import OAuthClient, TokenEndpointAuthMethod
from app.models.client import API_SCOPE, GRANT_TYPES, ID_TOKEN_ALGS, MAX_LIFETIME, MIN_LIFETIME, OIDC_SCOPES
from app.security.redirect_uris import redirect_uri_problem

CLIENT_TYPES = ("public", "confidential")
# Scopes a user grants: a token obtained without a user (client credentials) cannot carry them.
USER_ONLY_SCOPES = frozenset({"openid", "offline_access"})
SECRET_METHODS = frozenset({TokenEndpointAuthMethod.CLIENT_SECRET_BASIC, TokenEndpointAuthMethod.CLIENT_SECRET_POST})
CONFIDENTIAL_METHODS = (*sorted(SECRET_METHODS), TokenEndpointAuthMethod.PRIVATE_KEY_JWT)
MAX_JWKS_KEYS = 10
MIN_RSA_BITS = 2048
# JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# private_key_jwt: the algorithm each kind of registered key signs client assertions with. They are
# what the token endpoint verifies (Authlib decodes assertions with joserfc's recommended algorithms)
# and what discovery advertises; a key no listed algorithm can use could never authenticate.
ASSERTION_ALG_BY_KEY_TYPE = {"RSA": "RS256", "EC": "ES256"}
ASSERTION_ALGS = tuple(ASSERTION_ALG_BY_KEY_TYPE.values())
_ES256_CURVE = "P-256"


def client_type_of(client: OAuthClient) -> str:
    """'public' for clients that cannot keep a secret (auth method none), else 'confidential'."""
    return "public" if client.is_public else "confidential"


def unique(values: Iterable[str]) -> list[str]:
    """The values in their first-seen order, without repeats."""
    return list(dict.fromkeys(values))


def _jwks_problems(jwks: Any) -> list[str]:
    """Why `jwks` is not an acceptable JWK Set of public signing keys (RFC 7517 §5), if it is not."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        return ['Must be a JWK Set: an object with a "keys" array.']
    keys = jwks["keys"]
    if not keys:
        return ["Must contain at least one public key."]
    if len(keys) > MAX_JWKS_KEYS:
        return [f"Must contain at most {MAX_JWKS_KEYS} keys."]
    problems = []
    for index, key in enumerate(keys):
        where = f"keys[{index}]"
        if not isinstance(key, dict):
            problems.append(f"{where}: must be a JWK object.")
            continue
        private = sorted(_PRIVATE_JWK_MEMBERS & key.keys())
        if private:
            # A client registers only its public key; private material here means it leaked.
            problems.append(f"{where}: contains private or symmetric key material ({', '.join(private)}); "
                            "register the public key only.")
            continue
        alg = ASSERTION_ALG_BY_KEY_TYPE.get(key.get("kty"))
        if alg is None:
            problems.append(f"{where}: kty must be one of {', '.join(sorted(ASSERTION_ALG_BY_KEY_TYPE))} "
                            f"(client assertions are signed with {' or '.join(ASSERTION_ALGS)}).")
            continue
        if key["kty"] == "EC" and key.get("crv") != _ES256_CURVE:
            problems.append(f"{where}: EC keys must be on the {_ES256_CURVE} curve (ES256).")
            continue
        if key.get("alg", alg) != alg:
            problems.append(f"{where}: a {key['kty']} key signs client assertions with {alg}, so alg must be {alg}.")
            continue
        if key.get("use", "sig") != "sig":
            problems.append(f"{where}: use must be sig.")
            continue
        if key["kty"] == "RSA" and isinstance(key.get("n"), str):
            try:
                modulus = base64.urlsafe_b64decode(key["n"] + "=" * (-len(key["n"]) % 4))
            except (binascii.Error, ValueError):
                problems.append(f"{where}: n is not base64url.")
                continue
            if len(modulus.lstrip(b"\0")) * 8 < MIN_RSA_BITS:
                problems.append(f"{where}: RSA keys must have at least {MIN_RSA_BITS} bits.")
                continue
        try:
            JWKRegistry.import_key(key)
        except (JoseError, ValueError, TypeError) as err:
            problems.append(f"{where}: not a valid public key ({err}).")
    return problems


def _lifetime_problems(value: Any, maximum: int) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_LIFETIME <= value <= maximum:
        return [f"Must be a whole number of seconds from {MIN_LIFETIME} to {maximum}, or null for the default."]
    return []


def configuration_problems(*, name: str, client_type: str, token_endpoint_auth_method: str,
                            redirect_uris: list[str], post_logout_redirect_uris: list[str],
                            grant_types: list[str], scopes: list[str],
                            jwks: Any, id_token_signed_response_alg: str, access_token_lifetime: Any,
                            refresh_token_lifetime: Any, first_party: bool,
                            organization_id: uuid.UUID | None, jwks_changed: bool = True) -> dict[str, list[str]]:
    """Every rule a client's complete configuration must satisfy, as per-field messages.

    A key set is judged when it is set (`jwks_changed`), not again on an update that leaves it
    alone: the key rules have grown since some stored sets were accepted, and such a client must
    stay editable."""
    problems: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    if not name.strip():
        add("name", "Must not be blank.")
    if first_party and organization_id is not None:
        # Skipping consent is a platform decision: an organization's admins cannot let their
        # own client act for users without asking them.
        add("first_party", "Only platform clients may skip consent.")

    if client_type not in CLIENT_TYPES:
        add("client_type", "Must be public or confidential.")
    elif client_type == "public" and token_endpoint_auth_method != TokenEndpointAuthMethod.NONE:
        # A public client cannot keep a secret or a private key (RFC 6749 §2.1).
        add("token_endpoint_auth_method", "Public clients authenticate with none.")
    elif client_type == "confidential" and token_endpoint_auth_method not in CONFIDENTIAL_METHODS:
        add("token_endpoint_auth_method", f"Confidential clients use one of {', '.join(CONFIDENTIAL_METHODS)}.")

    if token_endpoint_auth_method == TokenEndpointAuthMethod.PRIVATE_KEY_JWT:
        if jwks is None:
            add("jwks", "Required for private_key_jwt: the client's public keys as a JWK Set.")
        elif jwks_changed:
            for message in _jwks_problems(jwks):
                add("jwks", message)
    elif jwks is not None:
        add("jwks", "Only private_key_jwt clients register keys.")

    unknown = [g for g in grant_types if g not in GRANT_TYPES]
    if unknown:
        add("grant_types", f"Unsupported: {', '.join(unknown)}. Use {', '.join(GRANT_TYPES)}.")
    if not grant_types:
        add("grant_types", "At least one grant type is required.")
    if "refresh_token" in grant_types and "authorization_code" not in grant_types:
        add("grant_types", "refresh_token requires authorization_code.")
    if "client_credentials" in grant_types and client_type == "public":
        # RFC 6749 §4.4: the client credentials grant is for confidential clients only.
        add("grant_types", "Public clients cannot use client_credentials.")
    if "authorization_code" in grant_types and not redirect_uris:
        add("redirect_uris", "authorization_code requires at least one redirect URI.")
    for field, uris in (("redirect_uris", redirect_uris), ("post_logout_redirect_uris", post_logout_redirect_uris)):
        for uri in uris:
            if problem := redirect_uri_problem(uri):
                add(field, f"{uri!r}: {problem}")

    bad_shapes = [s for s in scopes if not isinstance(s, str) or not (s in OIDC_SCOPES or API_SCOPE.fullmatch(s))]
    if bad_shapes:
        add("scopes", f"Unknown scope shape: {', '.join(map(repr, bad_shapes))}. Use an OIDC scope "
                      f"({', '.join(sorted(OIDC_SCOPES))}) or a lower-case API scope such as invoices:read.")
    user_only = sorted(USER_ONLY_SCOPES.intersection(scopes))
    if "client_credentials" in grant_types and user_only:
        add("scopes", f"Clients with client_credentials may not hold {', '.join(user_only)}: "
                      "a token issued without a user has no subject to identify.")

    if id_token_signed_response_alg not in ID_TOKEN_ALGS:
        add("id_token_signed_response_alg", f"Must be one of {', '.join(ID_TOKEN_ALGS)}.")
    # Access tokens are short-lived JWTs that cannot be recalled except by denylist; the cap
    # also bounds how long a rotated-out signing key must stay published (Settings.key_retention).
    for field, value, maximum in (("access_token_lifetime", access_token_lifetime, MAX_CLIENT_ACCESS_TOKEN_LIFETIME),
                                  ("refresh_token_lifetime", refresh_token_lifetime, MAX_LIFETIME)):
        for message in _lifetime_problems(value, maximum):
            add(field, message)
    return problems


def response_types(grant_types: list[str]) -> list[str]:
    """The response types that go with these grant types (RFC 6749 §3.1.1: code with authorization_code)."""
    return ["code"] if "authorization_code" in grant_types else []
