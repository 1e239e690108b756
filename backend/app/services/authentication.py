"""Password sign-in, with lockout, constant-cost failures and audit."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from app import errors
from app.config import Settings
from app.models import SessionEndReason, SessionKind, User
from app.models.base import utcnow
from app.security import passwords
from app.services import audit, sessions, users
from app.services.actor import Actor


def _record_failure(db: Session, actor: Actor, user: User | None, reason: str) -> None:
    audit.record_event(db, actor=actor.as_user(user) if user else actor, action="auth.login", result="failure",
                       target_type="user" if user else None, target_id=user.id if user else None,
                       details={"reason": reason})


def _count_failure(db: Session, user: User, settings: Settings, now: datetime) -> bool:
    """Count a bad password atomically; lock the account at the threshold.

    Returns True when this failure locked the account.
    """
    failures = db.scalar(
        update(User).where(User.id == user.id)
        .values(failed_login_count=User.failed_login_count + 1)
        .returning(User.failed_login_count)
        .execution_options(synchronize_session=False)
    )
    # Load the new count: the object still holds the one read before the UPDATE,
    # and resetting it below to a value equal to that stale one would write nothing.
    db.refresh(user)
    if failures < settings.LOGIN_MAX_FAILURES:
        return False
    # Start the next lockout period with a clean count.
    user.failed_login_count = 0
    user.locked_until = now + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
    return True


def _locked_error(user: User, now: datetime) -> errors.AccountLocked:
    assert user.locked_until is not None
    retry_after = max(1, int((user.locked_until - now).total_seconds()))
    return errors.AccountLocked(details={"locked_until": user.locked_until.isoformat()},
                                headers={"Retry-After": str(retry_after)})


def login(db: Session, *, actor: Actor, email: str, password: str, settings: Settings,
          kind: SessionKind = SessionKind.API, previous_session_id: uuid.UUID | None = None,
          now: datetime | None = None) -> sessions.IssuedSession:
    """Check an email and password and start a session.

    `previous_session_id`: the session this one replaces (a browser signing in again, perhaps
    as someone else); it ends once the sign-in succeeds. One browser, one signed-in user.

    Failures are recorded (audit event, failure count, lockout) in the current
    transaction before the error is raised: the caller commits them.

    Raises:
        InvalidCredentials: unknown email or wrong password (the same error for both).
        AccountLocked: too many consecutive failures.
        AccountSuspended: the password was right but the account is suspended.
    """
    now = now or utcnow()
    user = users.get_user_by_email(db, email)
    if user is None:
        # Same bcrypt cost as a real check, so timing does not reveal the account.
        passwords.verify_password(password, passwords.dummy_hash(settings.BCRYPT_ROUNDS))
        _record_failure(db, actor, None, "unknown_email")
        raise errors.InvalidCredentials()
    if user.is_locked(now):
        _record_failure(db, actor, user, "locked")
        raise _locked_error(user, now)
    if user.password_hash is None or not passwords.verify_password(password, user.password_hash):
        locked = _count_failure(db, user, settings, now)
        _record_failure(db, actor, user, "bad_password_locked" if locked else "bad_password")
        raise _locked_error(user, now) if locked else errors.InvalidCredentials()
    if not user.is_active:
        _record_failure(db, actor, user, "suspended")
        raise errors.AccountSuspended()
    user.failed_login_count = 0
    user.locked_until = None
    return sign_in(db, actor=actor, user=user, settings=settings, kind=kind,
                   previous_session_id=previous_session_id, now=now)


def sign_in(db: Session, *, actor: Actor, user: User, settings: Settings, kind: SessionKind,
            previous_session_id: uuid.UUID | None = None, details: dict | None = None,
            now: datetime | None = None) -> sessions.IssuedSession:
    """Start a session for `user`, whose credentials were checked, and audit it (auth.login, with
    `details`). `previous_session_id`, the session this one replaces (a browser signing in again,
    perhaps as someone else), ends first: one browser, one signed-in user."""
    if previous_session_id is not None:
        sessions.end_session(db, session_id=previous_session_id, reason=SessionEndReason.LOGOUT)
    issued = sessions.start_session(db, user=user, settings=settings, kind=kind, ip=actor.ip,
                                    user_agent=actor.user_agent, now=now)
    audit.record_event(db, actor=actor.as_user(user), action="auth.login", target_type="session",
                       target_id=issued.session.id, details=details)
    return issued
