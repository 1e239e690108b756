"""The audit trail: who did what, from where, with what result."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, UUIDPrimaryKey, utcnow


class AuditEvent(UUIDPrimaryKey, Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_actor_user_id", "actor_user_id"),
        Index("ix_audit_events_action_occurred_at", "action", "occurred_at"),
        Index("ix_audit_events_organization_id_occurred_at", "organization_id", "occurred_at"),
    )

    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # e.g. "auth.login"; dotted <aggregate>.<verb>.
    action: Mapped[str] = mapped_column(String(64))
    # "success" or "failure".
    result: Mapped[str] = mapped_column(String(16))
    # NULL when the actor is unknown or their account was deleted (anonymised).
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    # The organization the event belongs to, shown in its audit trail. No foreign key:
    # the trail outlives a deleted organization.
    organization_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    request_id: Mapped[str | None] = mapped_column(String(128))
    # Non-personal context, e.g. {"reason": "bad_password"}. Never secrets.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
