"""Password sign-in: one bcrypt check per attempt, failure counters that tell nothing, and audit."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from app import errors
from app.config import Settings
from app.models import SessionEndReason, SessionKind, User
from app.models.base import utcnow
from app.security import passwords
from app.services import audit, domains, login_throttle, sessions, users
from app.services.actor import Actor


def _record_failure(db: Session, actor: Actor, user: User | None, reason: str) -> None:
    audit.record_event(db, actor=actor.as_user(user) if user else actor, action=audit.SIGN_IN_ACTION, result="failure",
                       target_type="user" if user else None, target_id=user.id if user else None,
                       details={"method": "password", "reason": reason})


def login(db: Session, *, actor: Actor, email: str, password: str, settings: Settings,
          kind: SessionKind = SessionKind.API, previous_session_id: uuid.UUID | None = None,
          now: datetime | None = None) -> sessions.IssuedSession:
    """Check an email and password and start a session.

    `previous_session_id`: the session this one replaces (a browser signing in again, perhaps
    as someone else); it ends once the sign-in succeeds. One browser, one signed-in user.

    An unknown email goes through the same steps as an account: one bcrypt check (against a
    dummy hash), the same failure counters (services/login_throttle.py) and so the same
    answers, locked or not. Only the right password of an account tells them apart.

    Failures are recorded (audit event, failure counts) in the current transaction before the
    error is raised: the caller commits them.

    Raises:
        InvalidCredentials: unknown email or wrong password (the same error for both).
        AccountLocked: too many failures for this email from this address (this one included).
        SignInThrottled: too many failures for this email from everywhere.
        AccountSuspended: the password was right but the account is suspended.
        SSORequired: the email's domain enforces single sign-on (domains.sign_in_refusal), whatever the
            password; not counted as a failed password.
    """
    now = now or utcnow()
    user = users.get_user_by_email(db, email)
    keys = login_throttle.keys_for(email=users.normalize_email(email), ip=actor.ip, settings=settings)
    # Exactly one bcrypt check whatever follows, so that no answer is faster than another.
    stored_hash = user.password_hash if user is not None else None
    checked_hash = stored_hash or passwords.dummy_hash(settings.BCRYPT_ROUNDS)
    password_matches = passwords.verify_password(password, checked_hash) and stored_hash is not None
    if sso_required := domains.sign_in_refusal(db, email=email, user=user):
        _record_failure(db, actor, user, "sso_required")
        raise sso_required
    if refusal := login_throttle.refusal(db, keys=keys, now=now):
        _record_failure(db, actor, user, "locked" if isinstance(refusal, errors.AccountLocked) else "throttled")
        raise refusal
    if user is None or not password_matches:
        locked = login_throttle.count_failure(db, keys=keys, settings=settings, now=now)
        reason = "bad_password" if user is not None else "unknown_email"
        _record_failure(db, actor, user, f"{reason}_locked" if locked else reason)
        raise locked or errors.InvalidCredentials()
    if not user.is_active:
        _record_failure(db, actor, user, "suspended")
        raise errors.AccountSuspended()
    login_throttle.clear_source(db, keys=keys)
    return sign_in(db, actor=actor, user=user, settings=settings, kind=kind,
                   previous_session_id=previous_session_id, now=now)


def sign_in(db: Session, *, actor: Actor, user: User, settings: Settings, kind: SessionKind,
            previous_session_id: uuid.UUID | None = None, details: dict | None = None,
            now: datetime | None = None) -> sessions.IssuedSession:
    """Start a session for `user`, whose credentials were checked, and audit it (auth.login, with
    `details`, whose `method` says how they were checked: "password" unless the caller says
    otherwise; a user's login history reads it). `previous_session_id`, the session this one
    replaces (a browser signing in again, perhaps as someone else), ends first: one browser, one
    signed-in user."""
    if previous_session_id is not None:
        sessions.end_session(db, session_id=previous_session_id, reason=SessionEndReason.LOGOUT)
    issued = sessions.start_session(db, user=user, settings=settings, kind=kind, ip=actor.ip,
                                    user_agent=actor.user_agent, now=now)
    audit.record_event(db, actor=actor.as_user(user), action=audit.SIGN_IN_ACTION, target_type="session",
                       target_id=issued.session.id, details={"method": "password", **(details or {})})
    return issued
