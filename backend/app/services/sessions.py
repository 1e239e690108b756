"""Sign-in sessions: opaque bearer tokens, stored hashed, with sliding expiry.

A session's idle window slides forward with its use but never past its absolute
expiry. Use is recorded at most once per `activity_interval` (a minute, or a tenth
of the idle timeout if that is shorter): a session may thus end up to that much
before SESSION_IDLE_TIMEOUT has passed since its very last request, and a run of
requests costs one UPDATE instead of one each. State changes that two requests may race on
(rotation, ending) are single conditional UPDATEs, so exactly one wins.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, joinedload

from app import errors
from app.config import Settings
from app.models import SessionEndReason, SessionKind, User, UserSession
from app.models.base import utcnow
from app.security.tokens import hash_token, new_token
from app.services import audit
from app.services.actor import Actor


@dataclass(frozen=True)
class IssuedSession:
    session: UserSession
    # The bearer token; returned to the client once and never stored.
    token: str


def _sliding_expiry(now: datetime, absolute_expires_at: datetime, idle_timeout: int) -> datetime:
    return min(now + timedelta(seconds=idle_timeout), absolute_expires_at)


def activity_interval(idle_timeout: int) -> timedelta:
    """How long a session's recorded last use may lag behind its real one."""
    return min(timedelta(minutes=1), timedelta(seconds=idle_timeout) / 10)


def start_session(db: Session, *, user: User, settings: Settings, kind: SessionKind = SessionKind.API,
                  ip: str | None = None, user_agent: str | None = None,
                  now: datetime | None = None) -> IssuedSession:
    """Create a session for `user` and return it with its one-time token."""
    now = now or utcnow()
    absolute = now + timedelta(seconds=settings.SESSION_ABSOLUTE_TIMEOUT)
    token = new_token()
    session = UserSession(
        user_id=user.id, user=user, token_hash=hash_token(token), kind=kind,
        created_at=now, last_seen_at=now,
        expires_at=_sliding_expiry(now, absolute, settings.SESSION_IDLE_TIMEOUT),
        absolute_expires_at=absolute, ip=ip, user_agent=(user_agent or "")[:512] or None,
    )
    db.add(session)
    db.flush()  # assign session.id for the caller and its audit event
    return IssuedSession(session=session, token=token)


# Every authenticated request runs it: built once (its construction and cache key cost more CPU than the
# database's answer), the token's hash bound per call. The user comes in the same query: its status is
# checked on every authenticated request.
_SESSION_BY_HASH = (select(UserSession).options(joinedload(UserSession.user))
                    .where(UserSession.token_hash == bindparam("token_hash")))


def authenticate_token(db: Session, *, token: str, settings: Settings, kind: SessionKind = SessionKind.API,
                       now: datetime | None = None) -> UserSession:
    """The live session for a bearer token, its idle window extended if its use is due to be
    recorded (the session is then modified in `db`; the caller commits it).

    Raises:
        AuthenticationRequired: unknown, ended or expired token, or an inactive user.
    """
    now = now or utcnow()
    session = db.scalar(_SESSION_BY_HASH, {"token_hash": hash_token(token)})
    if session is None or session.kind != kind or not session.is_live(now):
        raise errors.AuthenticationRequired("The session token is invalid or has expired.")
    if not session.user.is_active:
        raise errors.AuthenticationRequired("The account is not active.")
    if now - session.last_seen_at >= activity_interval(settings.SESSION_IDLE_TIMEOUT):
        session.last_seen_at = now
        session.expires_at = _sliding_expiry(now, session.absolute_expires_at, settings.SESSION_IDLE_TIMEOUT)
    return session


def rotate_session(db: Session, *, session: UserSession, presented_token: str, settings: Settings,
                   now: datetime | None = None) -> IssuedSession:
    """Replace the session's token with a new one; `presented_token` stops working.

    The swap is conditional on the row still holding the presented token's
    hash, not `session.token_hash`: the object may have been reloaded after a
    concurrent rotation committed, and then both requests would win.

    Raises:
        AuthenticationRequired: the session was rotated or ended concurrently.
    """
    now = now or utcnow()
    token = new_token()
    expires_at = _sliding_expiry(now, session.absolute_expires_at, settings.SESSION_IDLE_TIMEOUT)
    rotated = db.execute(
        update(UserSession)
        .where(UserSession.id == session.id, UserSession.token_hash == hash_token(presented_token),
               UserSession.ended_at.is_(None))
        .values(token_hash=hash_token(token), last_seen_at=now, expires_at=expires_at)
        .execution_options(synchronize_session=False)
    )
    if rotated.rowcount != 1:
        raise errors.AuthenticationRequired("The session token is invalid or has expired.")
    db.refresh(session)
    return IssuedSession(session=session, token=token)


def end_session(db: Session, *, session_id: uuid.UUID, reason: SessionEndReason,
                now: datetime | None = None) -> bool:
    """End one session. Returns False when it had already ended."""
    ended = db.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.ended_at.is_(None))
        .values(ended_at=now or utcnow(), end_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return ended.rowcount == 1


def end_user_sessions(db: Session, *, user_id: uuid.UUID, reason: SessionEndReason,
                      keep_session_id: uuid.UUID | None = None, now: datetime | None = None) -> int:
    """End every open session of a user, except `keep_session_id`. Returns how many ended."""
    stmt = update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
    if keep_session_id is not None:
        stmt = stmt.where(UserSession.id != keep_session_id)
    ended = db.execute(stmt.values(ended_at=now or utcnow(), end_reason=reason)
                       .execution_options(synchronize_session=False))
    return ended.rowcount


def list_live_sessions(db: Session, *, user_id: uuid.UUID, now: datetime | None = None) -> list[UserSession]:
    """The user's sessions that have neither ended nor expired, newest first."""
    now = now or utcnow()
    return list(db.scalars(
        select(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None), UserSession.expires_at > now)
        .order_by(UserSession.created_at.desc())
    ))


def require_user_session(db: Session, *, user_id: uuid.UUID, session_id: uuid.UUID) -> UserSession:
    """One of the user's own sessions.

    Raises:
        NotFound: no such session, or it belongs to someone else (indistinguishable).
    """
    session = db.get(UserSession, session_id)
    if session is None or session.user_id != user_id:
        raise errors.NotFound("Session not found.")
    return session


def expire_stale_sessions(db: Session, *, now: datetime | None = None) -> int:
    """Mark every open session whose expiry has passed as ended. Returns how many."""
    now = now or utcnow()
    expired = db.execute(
        update(UserSession)
        .where(UserSession.ended_at.is_(None), UserSession.expires_at <= now)
        .values(ended_at=now, end_reason=SessionEndReason.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    return expired.rowcount


def refresh_session(db: Session, *, actor: Actor, session: UserSession, presented_token: str,
                    settings: Settings, now: datetime | None = None) -> IssuedSession:
    """Rotate the current session's token (the one presented) and extend its idle window.

    Raises:
        AuthenticationRequired: the token was already rotated or the session ended.
    """
    issued = rotate_session(db, session=session, presented_token=presented_token, settings=settings, now=now)
    audit.record_event(db, actor=actor, action="auth.session_refreshed", target_type="session", target_id=session.id)
    return issued


def logout(db: Session, *, actor: Actor, session: UserSession) -> None:
    """End the caller's current session.

    Raises:
        AuthenticationRequired: it had already ended (a concurrent logout won).
    """
    if not end_session(db, session_id=session.id, reason=SessionEndReason.LOGOUT):
        raise errors.AuthenticationRequired("The session token is invalid or has expired.")
    audit.record_event(db, actor=actor, action="auth.logout", target_type="session", target_id=session.id)


def logout_everywhere(db: Session, *, actor: Actor, user: User) -> int:
    """End every session of the user, the current one included. Returns how many ended."""
    ended = end_user_sessions(db, user_id=user.id, reason=SessionEndReason.LOGOUT_ALL)
    audit.record_event(db, actor=actor, action="auth.logout_all", target_type="user", target_id=user.id,
                       details={"sessions_ended": ended})
    return ended


def revoke_session(db: Session, *, actor: Actor, user: User, session_id: uuid.UUID) -> UserSession:
    """End one of the user's own sessions by id.

    Raises:
        NotFound: not the user's session, or it has already ended.
    """
    session = require_user_session(db, user_id=user.id, session_id=session_id)
    if not end_session(db, session_id=session.id, reason=SessionEndReason.REVOKED):
        raise errors.NotFound("Session not found.")
    audit.record_event(db, actor=actor, action="auth.session_revoked", target_type="session", target_id=session.id)
    db.refresh(session)
    return session
