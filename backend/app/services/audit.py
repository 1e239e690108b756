"""Audit events, written in the same transaction as the change they describe, and an
organization's audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import errors
from app.models import AuditEvent
from app.services.actor import Actor
from app.services.pagination import paginate


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


def list_events(db: Session, *, organization_id: uuid.UUID, action: str | None = None,
                actor_user_id: uuid.UUID | None = None, since: datetime | None = None,
                until: datetime | None = None, page: int, per_page: int) -> tuple[list[AuditEvent], int]:
    """One page of the organization's audit trail, newest first, and the number of matching events.

    Only events recorded with this organization_id: other organizations' events and
    platform events never appear. `action` matches exactly, or, when it ends in ".",
    as a prefix ("membership." is every membership event). `since` and `until` are
    timezone-aware and both inclusive.

    Raises:
        ValidationFailed: `until` is before `since`.
    """
    return _page_of_events(db, [AuditEvent.organization_id == organization_id], action=action,
                           actor_user_id=actor_user_id, since=since, until=until, page=page, per_page=per_page)


def list_platform_events(db: Session, *, organization_id: uuid.UUID | None = None, target_type: str | None = None,
                         target_id: str | None = None, action: str | None = None,
                         actor_user_id: uuid.UUID | None = None, since: datetime | None = None,
                         until: datetime | None = None, page: int, per_page: int) -> tuple[list[AuditEvent], int]:
    """One page of the whole platform's audit trail, every organization's and none, newest first:
    list_events's filters, plus the organization and the target (its type, its id, or both).

    Raises:
        ValidationFailed: `until` is before `since`.
    """
    conditions = []
    if organization_id is not None:
        conditions.append(AuditEvent.organization_id == organization_id)
    if target_type is not None:
        conditions.append(AuditEvent.target_type == target_type)
    if target_id is not None:
        conditions.append(AuditEvent.target_id == target_id)
    return _page_of_events(db, conditions, action=action, actor_user_id=actor_user_id, since=since, until=until,
                           page=page, per_page=per_page)


def _page_of_events(db: Session, conditions: list, *, action: str | None, actor_user_id: uuid.UUID | None,
                    since: datetime | None, until: datetime | None, page: int,
                    per_page: int) -> tuple[list[AuditEvent], int]:
    """The filters every trail offers, on top of `conditions`; see list_events.

    Raises:
        ValidationFailed: `until` is before `since`.
    """
    if since is not None and until is not None and until < since:
        raise errors.ValidationFailed(details={"until": ["Must not be before since."]})
    conditions = list(conditions)
    if action is not None:
        # autoescape: "_" in an action name is a literal, not a LIKE wildcard.
        conditions.append(AuditEvent.action.startswith(action, autoescape=True) if action.endswith(".")
                          else AuditEvent.action == action)
    if actor_user_id is not None:
        conditions.append(AuditEvent.actor_user_id == actor_user_id)
    if since is not None:
        conditions.append(AuditEvent.occurred_at >= since)
    if until is not None:
        conditions.append(AuditEvent.occurred_at <= until)
    return paginate(db, select(AuditEvent).where(*conditions)
                    .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()), page=page, per_page=per_page)


# Sign-ins, successful or not, of an account: services.authentication audits each as auth.login,
# with the account as actor (a failure too, once the email names an account) and details
# {"method", "reason"}. A login history reads them back rather than keeping a second record.
SIGN_IN_ACTION = "auth.login"


def list_sign_ins(db: Session, *, user_id: uuid.UUID, page: int, per_page: int) -> tuple[list[AuditEvent], int]:
    """One page of the user's sign-ins and failed attempts, newest first, and how many there are."""
    return _page_of_events(db, [AuditEvent.actor_user_id == user_id], action=SIGN_IN_ACTION, actor_user_id=None,
                           since=None, until=None, page=page, per_page=per_page)
