"""Verifying the JWT access tokens we issue (RFC 9068).

One function, used by userinfo, introspection, revocation and the management API
alike: signature against the published keys, `typ`, `iss`, `exp`, and the denylist.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from sqlalchemy.orm import Session

from app import errors
from app.config import Settings
from app.models import User
from app.services import users
from app.services.keys import KeyStore, jwk_set
from app.services.organizations import ORG_ADMIN_SCOPE, organization_token_key
from app.stores.denylist import DenialsUnknown, TokenDenylist
from app.stores.keysets import Verified, VerifiedTokens

log = logging.getLogger(__name__)

# RFC 9068 §2.1: an access token's `typ` is "at+jwt"; RFC 7515 §4.1.9 lets it be written with
# the "application/" prefix, and media types compare case-insensitively (RFC 2045 §5.1).
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


@dataclass(frozen=True)
class AccessToken:
    claims: dict[str, Any]

    @property
    def jti(self) -> str:
        return self.claims["jti"]

    @property
    def client_id(self) -> str:
        return self.claims["client_id"]

    @property
    def scope(self) -> str:
        return self.claims.get("scope") or ""

    @property
    def exp(self) -> int:
        return int(self.claims["exp"])


def _verified(token: str, keys: KeyStore, verified_tokens: VerifiedTokens) -> Verified | None:
    """The header and claims of a token signed by a published key and typed as an access token."""
    signing_keys = keys.published()
    published = verified_tokens.published(tuple(sorted(key.kid for key in signing_keys)),
                                           lambda: KeySet.import_key_set(jwk_set(signing_keys)))
    known = published.verified.get(token)
    if known is not None:
        return known
    try:
        decoded = jwt.decode(token, published.keyset, algorithms=["RS256", "ES256"])
    except (JoseError, ValueError):
        return None
    if not is_access_token_header(decoded.header):
        return None
    verified_tokens.keep(published, token, (decoded.header, decoded.claims))
    return decoded.header, decoded.claims


def is_access_token_header(header: dict[str, Any]) -> bool:
    """Whether a JWS header's `typ` marks an access token (RFC 9068 §2.1, §4). ID Tokens are
    signed with the same keys; this is what tells the two apart (RFC 8725 §3.11)."""
    return str(header.get("typ", "")).lower() in _ACCESS_TOKEN_TYPES


def verify_access_token(token: str, *, settings: Settings, keys: KeyStore, verified_tokens: VerifiedTokens,
                        denied: TokenDenylist, now: int | None = None) -> AccessToken | None:
    """The token's claims if it is a live access token we issued; None otherwise.

    Checks the signature against the published keys (so a rotated-out key still
    verifies until it leaves the JWKS), `typ: at+jwt` (RFC 9068 §4), `iss`,
    `exp`, and the denylist. `verified_tokens` spares verifying a signature seen before.
    """
    verified = _verified(token, keys, verified_tokens)
    if verified is None:
        return None
    claims = dict(verified[1])  # the caller's own: the verified claims are shared
    if claims.get("iss") != settings.ISSUER or "jti" not in claims or "client_id" not in claims:
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= (now or time.time()):
        return None
    # Every token issued in an organization dies with it (services.organizations.delete_organization).
    organization_key = (organization_token_key(claims["org_id"]),) if "org_id" in claims else ()
    try:
        if denied.is_denied(claims["jti"], *organization_key):
            return None
    except DenialsUnknown:
        # Neither Redis nor the database can say: fail closed (RFC 7662 §2.2 inactive, RFC 6750 invalid_token).
        log.warning("access token refused: neither Redis nor the database could say whether it is revoked")
        return None
    return AccessToken(claims)


def token_user(db: Session, token: AccessToken) -> User | None:
    """The active user a verified access token was issued to; None for a client's own token
    (client credentials) or a user who is suspended or gone."""
    return users.active_user(users.get_user(db, token.claims.get("sub")))


def authenticate_org_admin_token(db: Session, token: str, *, settings: Settings, keys: KeyStore,
                                 verified_tokens: VerifiedTokens, denied: TokenDenylist) -> tuple[User, object]:
    """The user of a live access token carrying the org:admin scope, and the token's org_id: how an
    access token signs in to the organization endpoints of the management API.

    Raises:
        AuthenticationRequired: not a live access token of ours, no org:admin scope, or no active user.
    """
    verified = verify_access_token(token, settings=settings, keys=keys, verified_tokens=verified_tokens,
                                   denied=denied)
    if verified is None or ORG_ADMIN_SCOPE not in verified.scope.split():
        raise errors.AuthenticationRequired(
            "The access token is invalid, expired, revoked, or lacks the org:admin scope.")
    user = token_user(db, verified)
    if user is None:
        raise errors.AuthenticationRequired("The access token's user cannot use the API.")
    return user, verified.claims.get("org_id")
