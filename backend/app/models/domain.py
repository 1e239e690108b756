"""Email domains an organization claims, and proves it owns with a DNS TXT record."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, UUIDPrimaryKey, utcnow

# Where the organization publishes the challenge: _gatehouse-challenge.<domain>.
CHALLENGE_LABEL = "_gatehouse-challenge"
# A host name of two labels or more (letters, digits, hyphens; an internationalized name in its xn-- form),
# matched case-insensitively; at most 253 characters in all.
DOMAIN_NAME = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
                         r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")


class OrganizationDomain(UUIDPrimaryKey, Base):
    """A domain an organization claimed. Verified (verified_at set), it routes its people's sign-in to the
    organization's connection and may enforce single sign-on. Several organizations may claim a domain;
    once verified it is one organization's alone (the partial unique index)."""

    __tablename__ = "organization_domains"
    __table_args__ = (
        UniqueConstraint("organization_id", "domain"),
        Index("uq_organization_domains_verified_domain", "domain", unique=True,
              sqlite_where=text("verified_at IS NOT NULL"), postgresql_where=text("verified_at IS NOT NULL")),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("organizations.id", ondelete="CASCADE"))
    # Lower-case, ASCII (IDNA), without a trailing dot.
    domain: Mapped[str] = mapped_column(String(253))
    # The TXT record's value. Not a credential: it is published in DNS for anyone to read, and only
    # proves control of the zone, so it is kept as it is shown.
    verification_token: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The organization's connection this domain's people sign in with.
    identity_provider_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("identity_providers.id", ondelete="SET NULL"))
    # Home-realm discovery: the sign-in page sends this domain's people straight to the connection.
    auto_redirect: Mapped[bool] = mapped_column(Boolean, default=False)
    # This domain's people sign in only through the organization's connection (platform admins excepted).
    enforce_sso: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def verified(self) -> bool:
        return self.verified_at is not None

    @property
    def challenge_name(self) -> str:
        return f"{CHALLENGE_LABEL}.{self.domain}"
