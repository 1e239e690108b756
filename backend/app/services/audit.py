"""Audit events, written in the same transaction as the change they describe."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import AuditEvent
from app.services.actor import Actor


def record_event(db: Session, *, actor: Actor, action: str, result: str = "success",
                 target_type: str | None = None, target_id: object | None = None,
                 details: dict[str, Any] | None = None, organization_id: uuid.UUID | None = None) -> AuditEvent:
    """Add an audit event to the current transaction and return it.

    `organization_id` puts the event in that organization's audit trail.
    """
    event = AuditEvent(
        action=action,
        result=result,
        actor_user_id=actor.user.id if actor.user else None,
        organization_id=organization_id,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        ip=actor.ip,
        user_agent=(actor.user_agent or "")[:512] or None,
        request_id=actor.request_id,
        details=details or {},
    )
    db.add(event)
    return event


def anonymise_actor(db: Session, *, user_id: uuid.UUID) -> None:
    """Detach a departing user from the audit trail, keeping the events."""
    db.execute(update(AuditEvent).where(AuditEvent.actor_user_id == user_id).values(actor_user_id=None))
    db.execute(
        update(AuditEvent)
        .where(AuditEvent.target_type == "user", AuditEvent.target_id == str(user_id))
        .values(target_id=None)
    )
