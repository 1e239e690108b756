"""User accounts."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, UUIDPrimaryKey, utcnow


class UserStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class User(UUIDPrimaryKey, Base):
    __tablename__ = "users"

    # Stored lower-cased by services.users (the only writer), so a plain unique
    # constraint is a case-insensitive one on every database.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # bcrypt; None for accounts that only sign in through a federated provider.
    password_hash: Mapped[str | None] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[UserStatus] = mapped_column(
        Enum(UserStatus, name="user_status", native_enum=False, length=16,
             values_callable=lambda e: [m.value for m in e]),
        default=UserStatus.ACTIVE,
    )
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def is_active(self) -> bool:
        """Only active users sign in, keep sessions, or receive tokens."""
        return self.status == UserStatus.ACTIVE

    def get_user_id(self) -> str:
        """The OIDC subject (`sub`), read by Authlib's token generators."""
        return str(self.id)
