"""Consent: the scopes a user has allowed a client to receive, in one organization or in none."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, UUIDPrimaryKey, utcnow

NO_ORGANIZATION = text("organization_id IS NULL")


class Consent(UUIDPrimaryKey, Base):
    """One row per user, client and organization context (NULL: the authorization named none).

    Consent given in one organization says nothing about another, nor about no organization:
    services.consents matches `organization_id` exactly.
    """

    __tablename__ = "consents"
    __table_args__ = (
        UniqueConstraint("user_id", "client_pk", "organization_id"),
        # NULLs are distinct in a unique constraint (SQLite and PostgreSQL alike), so the
        # constraint above never stops a second "no organization" row; this partial index does.
        Index("uq_consents_user_id_client_pk_no_organization", "user_id", "client_pk", unique=True,
              sqlite_where=NO_ORGANIZATION, postgresql_where=NO_ORGANIZATION),
        Index("ix_consents_organization_id", "organization_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    client_pk: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
