"""Authorization codes and refresh tokens: single-use and rotating credentials, stored hashed."""

from __future__ import annotations

import uuid
from datetime import datetime

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin
from sqlalchemy import JSON, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, UTCDateTime, UUIDPrimaryKey, utcnow
from app.models.client import OAuthClient
from app.models.user import User


# The longest nonce an authorization request may carry (a longer one is invalid_request).
MAX_NONCE_LENGTH = 255


class AuthorizationCode(UUIDPrimaryKey, AuthorizationCodeMixin, Base):
    __tablename__ = "authorization_codes"
    # Codes are kept after redemption: the per-client nonce replay check (services/grants.nonce_used)
    # must not scan all of them on every authorization request.
    __table_args__ = (Index("ix_authorization_codes_client_pk_nonce", "client_pk", "nonce"),
                      Index("ix_authorization_codes_organization_id", "organization_id"))

    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_pk: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    # As the authorization request named it; None when it named none (RFC 6749 §4.1.3: the token
    # request must then leave it out too).
    redirect_uri: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    nonce: Mapped[str | None] = mapped_column(String(MAX_NONCE_LENGTH))
    # The organization the user chose (or the client's own); its claims go into the tokens.
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    # When the user authenticated (OIDC auth_time), and how (amr).
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The identity provider the user signed in through, if any (the ID token's idp claim).
    identity_provider_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("identity_providers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set on first redemption; a second redemption revokes what the first issued (RFC 6749 §4.1.2).
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the redemption issued: the refresh token family and the access token's id.
    family_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    access_token_jti: Mapped[str | None] = mapped_column(String(64))
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    client: Mapped[OAuthClient] = relationship()
    user: Mapped[User] = relationship()

    # --- authlib AuthorizationCodeMixin / OIDC AuthorizationCodeMixin ---

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str]:
        return list(self.amr)


class RefreshToken(UUIDPrimaryKey, Base):
    """One link of a rotation chain. A family is every token descended from one grant."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family_id", "family_id"),
                      Index("ix_refresh_tokens_organization_id", "organization_id"))

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    client_pk: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text, default="")
    # The organization context of the grant, kept by every rotation.
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when this token was exchanged for its successor.
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The successor's token, encrypted, kept only to answer a retry within the grace window.
    successor_ciphertext: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The access token issued together with this refresh token, for denylisting on revocation.
    access_token_jti: Mapped[str | None] = mapped_column(String(64))
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    client: Mapped[OAuthClient] = relationship()
    user: Mapped[User] = relationship()

    # --- the parts of authlib's TokenMixin the refresh grant uses ---

    def check_client(self, client: OAuthClient) -> bool:
        return self.client_pk == client.id

    def get_scope(self) -> str:
        return self.scope


class RevokedToken(Base):
    """A denial: the access token `key` names (its jti, or a whole organization's, see
    services.organizations.organization_token_key) is refused until `expires_at`, when it would
    have expired anyway. The record of every denial; Redis holds the fast copy (services.revocations)."""

    __tablename__ = "revoked_tokens"
    __table_args__ = (Index("ix_revoked_tokens_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
