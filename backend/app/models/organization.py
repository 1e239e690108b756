"""Organizations (tenants), their roles, memberships and invitations."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, UTCDateTime, UUIDPrimaryKey, utcnow
from app.models.user import User

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Organization.settings: the keys an organization may set, with their bounds.
INVITATION_TTL_HOURS_DEFAULT, INVITATION_TTL_HOURS_MAX = 168, 720
ROLE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class Organization(UUIDPrimaryKey, Base):
    __tablename__ = "organizations"

    # Lower-case letters, digits and hyphens (services.organizations checks the shape); unique.
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Organization-level preferences; services.organizations owns the keys it accepts.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Role(UUIDPrimaryKey, Base):
    """A named set of permissions in one organization.

    Every organization has the built-in roles owner, admin and member (created with it;
    their permissions come from code, `services.organizations.BUILTIN_ROLES`, so the
    catalogue can grow without a data migration) plus any custom roles its admins define.
    """

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500), default="")
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Custom roles only: permissions from security.permissions.PERMISSIONS.
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Membership(UUIDPrimaryKey, Base):
    """A user's place in an organization: exactly one role."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id"),
        Index("ix_memberships_user_id", "user_id"),
        Index("ix_memberships_role_id", "role_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    # NO ACTION: a role still held by someone cannot be deleted (services answer 409 first),
    # yet deleting the organization may cascade to roles and memberships in one statement.
    role_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("roles.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    organization: Mapped[Organization] = relationship()
    user: Mapped[User] = relationship()
    role: Mapped[Role] = relationship()


class InvitationStatus(enum.StrEnum):
    """Where an invitation stands; not stored, but read from its timestamps and the clock
    (services.invitations.invitation_status)."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"


class Invitation(UUIDPrimaryKey, Base):
    """An emailed offer to join an organization with a role. The token is stored as SHA-256."""

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_organization_id_email", "organization_id", "email"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"))
    # Lower-cased, as users.email.
    email: Mapped[str] = mapped_column(String(320))
    role_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("roles.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organization: Mapped[Organization] = relationship()
    role: Mapped[Role] = relationship()
    invited_by: Mapped[User | None] = relationship(foreign_keys=[invited_by_user_id])
