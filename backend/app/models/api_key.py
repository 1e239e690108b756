"""Personal API keys: a user's long-lived credential for the management API, limited to scopes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, UTCDateTime, UUIDPrimaryKey, utcnow
from app.models.user import User


class ApiKey(UUIDPrimaryKey, Base):
    """A key is found by its public prefix and proved by the SHA-256 of the whole key
    (security/api_keys.py); the key itself is only ever in the create response.

    It dies with its user: deleted with them (ON DELETE CASCADE), refused while they are not
    active, and revoked (revoked_at) by its owner or by services.api_keys.revoke_all_for_user.
    """

    __tablename__ = "api_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(12), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Recorded at most once a minute (services.api_keys.USE_RECORDING_INTERVAL).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_ip: Mapped[str | None] = mapped_column(String(45))

    user: Mapped[User] = relationship()

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now
