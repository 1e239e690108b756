"""Sign-in sessions: an opaque bearer token (stored hashed) with sliding expiry."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, UTCDateTime, UUIDPrimaryKey, utcnow
from app.models.user import User


class SessionKind(enum.StrEnum):
    API = "api"
    BROWSER = "browser"


class SessionEndReason(enum.StrEnum):
    LOGOUT = "logout"
    LOGOUT_ALL = "logout_all"
    REVOKED = "revoked"
    PASSWORD_CHANGED = "password_changed"
    EXPIRED = "expired"
    # The SAML IdP's LogoutRequest (single logout) ended it.
    IDP_LOGOUT = "idp_logout"
    SUSPENDED = "suspended"


def _str_enum(enum_cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(enum_cls, name=name, native_enum=False, length=24,
                values_callable=lambda e: [m.value for m in e])


class UserSession(UUIDPrimaryKey, Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user_id_ended_at", "user_id", "ended_at"),
                      Index("ix_sessions_identity_provider_id_saml_name_id", "identity_provider_id", "saml_name_id"))

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    # SHA-256 hex of the bearer token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[SessionKind] = mapped_column(_str_enum(SessionKind, "session_kind"), default=SessionKind.API)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Sliding: last activity + idle timeout, never past absolute_expires_at.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    absolute_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[SessionEndReason | None] = mapped_column(_str_enum(SessionEndReason, "session_end_reason"))
    # How the person signed in (OIDC amr): None for a password; ["fed", *the upstream's amr] through an
    # identity provider, which identity_provider_id names (the ID token's idp claim).
    amr: Mapped[list[str] | None] = mapped_column(JSON)
    identity_provider_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("identity_providers.id", ondelete="SET NULL"))
    # Through a SAML connection: who the IdP said it was and its session there (SAML Core §2.2.3, §2.7.2),
    # which its LogoutRequest names and ours must name (Profiles §4.4), so single logout finds this session.
    saml_name_id: Mapped[str | None] = mapped_column(String(512))
    saml_name_id_format: Mapped[str | None] = mapped_column(String(256))
    saml_session_index: Mapped[str | None] = mapped_column(String(256))

    user: Mapped[User] = relationship()

    def is_live(self, now: datetime) -> bool:
        return self.ended_at is None and self.expires_at > now
