"""Failed sign-in counters (services/login_throttle.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class LoginThrottle(Base):
    """Failures counted for one key: an email from one source address, or an email from anywhere.

    Keyed by an HMAC of the email (and source), never the email itself: the email typed may be
    nobody's, or a mistyped password, and an unknown email is counted exactly like an account.
    """

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # A source counter's account counter (None on the account counter itself): the source
    # address is hashed into the key, so an administrator's unlock finds an email's source
    # counters through this.
    account_key: Mapped[str | None] = mapped_column(String(64), index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # The count is forgotten from then on; the row can go once this and locked_until have passed.
    window_ends_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # No attempt for this key is checked before then.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
