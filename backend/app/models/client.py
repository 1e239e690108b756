"""OAuth clients (relying parties and machine clients), with Authlib's ClientMixin."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, UUIDPrimaryKey, utcnow
from app.security.tokens import token_matches


GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
# Scopes with a meaning defined by OIDC Core §5.4 / §11, plus our organization claims.
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access", "organization"})
# Scopes for resource servers, e.g. "invoices:read" or "api.billing".
API_SCOPE = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
ID_TOKEN_ALGS = ("RS256", "ES256")
MIN_LIFETIME, MAX_LIFETIME = 60, 86400 * 90


class TokenEndpointAuthMethod(enum.StrEnum):
    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt"
    NONE = "none"


class OAuthClient(UUIDPrimaryKey, ClientMixin, Base):
    __tablename__ = "oauth_clients"
    __table_args__ = (Index("ix_oauth_clients_organization_id", "organization_id"),)

    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 hex of the secret; None for public and private_key_jwt clients.
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    # The organization that owns the client (its admins manage it, and it serves only its
    # members); None for a platform client.
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"))
    # Every authorization must happen in an organization: without an `organization`
    # parameter, the user picks one of theirs.
    organization_required: Mapped[bool] = mapped_column(Boolean, default=False)
    # Exact-match lists (RFC 9700 §4.1.3): no prefixes, no wildcards.
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    response_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The scopes this client may ever receive; requests for others get invalid_scope.
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    # Public keys for private_key_jwt client authentication (a JWK Set).
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    require_pkce: Mapped[bool] = mapped_column(Boolean, default=True)
    # First-party clients skip the consent page.
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(8), default="RS256")
    # Per-client overrides of the server's token lifetimes, in seconds.
    access_token_lifetime: Mapped[int | None] = mapped_column(Integer)
    refresh_token_lifetime: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == TokenEndpointAuthMethod.NONE

    # --- authlib.oauth2.rfc6749.ClientMixin ---

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous default: with several registered URIs the request must name one.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str | None:
        """The requested scope if the client may have all of it, else None.

        Authlib's default drops what is not allowed; we never silently narrow a
        request: None makes the grant answer invalid_scope (RFC 6749 §4.1.2.1).
        """
        if not scope:
            return ""
        requested = scope.split()
        if not set(requested) <= set(self.scopes):
            return None
        return " ".join(dict.fromkeys(requested))

    @property
    def client_metadata(self) -> dict[str, Any]:
        # Read by Authlib's RP-initiated logout (post_logout_redirect_uris) and
        # UserInfoEndpoint (userinfo_signed_response_alg: absent, we return plain JSON).
        return {"post_logout_redirect_uris": list(self.post_logout_redirect_uris)}

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret_hash is not None and token_matches(client_secret, self.client_secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # One registered method for every endpoint that authenticates clients.
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types
