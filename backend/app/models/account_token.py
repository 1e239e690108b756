"""One-time tokens emailed to an account's owner: password reset, email verification and email change."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, UTCDateTime, UUIDPrimaryKey, utcnow
from app.models.user import User


class AccountTokenPurpose(enum.StrEnum):
    PASSWORD_RESET = "password_reset"
    EMAIL_VERIFICATION = "email_verification"
    # Sent to the address the account is to change to; `email` holds that new address.
    EMAIL_CHANGE = "email_change"


class AccountToken(UUIDPrimaryKey, Base):
    """A link's token, stored as SHA-256 (the token itself is only in the email).

    Used once: services.account_tokens claims it with one conditional UPDATE of `used_at`.
    Issuing a newer one of the same purpose, or changing the password, sets `used_at` on the
    others, so they die too.
    """

    __tablename__ = "account_tokens"
    __table_args__ = (Index("ix_account_tokens_user_id_purpose", "user_id", "purpose"),)

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[AccountTokenPurpose] = mapped_column(
        Enum(AccountTokenPurpose, name="account_token_purpose", native_enum=False, length=24,
             values_callable=lambda e: [m.value for m in e]))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The address the link was sent to (lower-cased): verification proves this one.
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
