"""services.sessions: issuing, sliding expiry, rotation and ending of sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app import errors
from app.models import AuditEvent, SessionEndReason, SessionKind, UserSession, UserStatus
from app.security.tokens import hash_token
from app.services import sessions
from app.services.actor import Actor
from tests.factories import UserFactory, UserSessionFactory

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def issued(db_session, user, settings) -> sessions.IssuedSession:
    return sessions.start_session(db_session, user=user, settings=settings, now=T0, ip="192.0.2.1",
                                  user_agent="pytest")


@pytest.fixture
def actor(user, issued) -> Actor:
    return Actor(user=user, ip="192.0.2.1", user_agent="pytest", request_id="req-00000001",
                 session_id=issued.session.id)


def idle(settings) -> timedelta:
    return timedelta(seconds=settings.SESSION_IDLE_TIMEOUT)


def keep_alive_until(db_session, token: str, settings, end: datetime) -> datetime:
    """Authenticate every half idle window from T0 until `end`; returns the last time used."""
    now = T0
    while now + idle(settings) / 2 < end:
        now += idle(settings) / 2
        sessions.authenticate_token(db_session, token=token, settings=settings, now=now)
    return now


def test_start_session_sets_idle_and_absolute_expiry(issued, settings):
    assert issued.session.expires_at == T0 + idle(settings)
    assert issued.session.absolute_expires_at == T0 + timedelta(seconds=settings.SESSION_ABSOLUTE_TIMEOUT)
    assert issued.session.last_seen_at == T0


def test_start_session_stores_only_token_hash(db_session, issued):
    row = db_session.scalar(select(UserSession))
    assert row.token_hash == hash_token(issued.token)
    assert issued.token not in (row.token_hash, row.ip, row.user_agent)


def test_authenticate_token_within_idle_window_extends_expiry(db_session, issued, settings):
    later = T0 + idle(settings) - timedelta(seconds=1)

    session = sessions.authenticate_token(db_session, token=issued.token, settings=settings, now=later)

    assert session.id == issued.session.id
    assert session.last_seen_at == later
    assert session.expires_at == later + idle(settings)


def test_use_within_the_activity_interval_is_not_written(db_session, issued, settings):
    """A run of requests costs one UPDATE: use less than activity_interval after the recorded one
    changes nothing, and the session stays live until the recorded window ends."""
    interval = sessions.activity_interval(settings.SESSION_IDLE_TIMEOUT)
    db_session.commit()

    session = sessions.authenticate_token(db_session, token=issued.token, settings=settings,
                                          now=T0 + interval - timedelta(seconds=1))

    assert not db_session.is_modified(session)
    assert (session.last_seen_at, session.expires_at) == (T0, T0 + idle(settings))


def test_use_once_the_activity_interval_has_passed_is_written(db_session, issued, settings):
    interval = sessions.activity_interval(settings.SESSION_IDLE_TIMEOUT)
    db_session.commit()

    session = sessions.authenticate_token(db_session, token=issued.token, settings=settings, now=T0 + interval)
    db_session.commit()

    row = db_session.scalar(select(UserSession).where(UserSession.id == issued.session.id))
    assert (row.last_seen_at, row.expires_at) == (T0 + interval, T0 + interval + idle(settings))
    assert session is row


@pytest.mark.parametrize(("idle_timeout", "interval"), [(900, timedelta(minutes=1)), (28800, timedelta(minutes=1)),
                                                        (300, timedelta(seconds=30)), (60, timedelta(seconds=6))])
def test_the_activity_interval_is_a_minute_or_a_tenth_of_a_shorter_idle_window(idle_timeout, interval):
    """A short idle timeout still slides: its use is recorded ten times per window."""
    assert sessions.activity_interval(idle_timeout) == interval


@pytest.mark.parametrize("after_expiry", [timedelta(0), timedelta(seconds=1), timedelta(days=1)])
def test_authenticate_token_after_idle_window_raises(db_session, issued, settings, after_expiry):
    with pytest.raises(errors.AuthenticationRequired):
        sessions.authenticate_token(db_session, token=issued.token, settings=settings,
                                    now=T0 + idle(settings) + after_expiry)


def test_authenticate_token_never_extends_past_absolute_expiry(db_session, issued, settings):
    absolute = issued.session.absolute_expires_at
    last = keep_alive_until(db_session, issued.token, settings, absolute)

    session = sessions.authenticate_token(db_session, token=issued.token, settings=settings, now=last)

    assert last + idle(settings) > absolute
    assert session.expires_at == absolute


def test_authenticate_token_after_absolute_expiry_raises_even_if_active(db_session, issued, settings):
    absolute = issued.session.absolute_expires_at
    keep_alive_until(db_session, issued.token, settings, absolute)

    with pytest.raises(errors.AuthenticationRequired):
        sessions.authenticate_token(db_session, token=issued.token, settings=settings, now=absolute)


def test_authenticate_token_with_unknown_token_raises(db_session, issued, settings):
    with pytest.raises(errors.AuthenticationRequired):
        sessions.authenticate_token(db_session, token="not-a-real-token", settings=settings, now=T0)


def test_authenticate_token_for_ended_session_raises(db_session, issued, settings):
    sessions.end_session(db_session, session_id=issued.session.id, reason=SessionEndReason.LOGOUT, now=T0)
    db_session.expire_all()

    with pytest.raises(errors.AuthenticationRequired):
        sessions.authenticate_token(db_session, token=issued.token, settings=settings, now=T0)


def test_authenticate_token_of_other_kind_raises(db_session, user, settings):
    browser = sessions.start_session(db_session, user=user, settings=settings, kind=SessionKind.BROWSER, now=T0)

    with pytest.raises(errors.AuthenticationRequired):
        sessions.authenticate_token(db_session, token=browser.token, settings=settings, now=T0)


def test_authenticate_token_for_suspended_user_raises(db_session, user, issued, settings):
    user.status = UserStatus.SUSPENDED

    with pytest.raises(errors.AuthenticationRequired):
        sessions.authenticate_token(db_session, token=issued.token, settings=settings, now=T0)


def test_rotate_session_replaces_token(db_session, issued, settings):
    rotated = sessions.rotate_session(db_session, session=issued.session, presented_token=issued.token,
                                      settings=settings, now=T0)

    assert rotated.token != issued.token
    assert rotated.session.token_hash == hash_token(rotated.token)
    assert sessions.authenticate_token(db_session, token=rotated.token, settings=settings, now=T0).id == \
        issued.session.id
    with pytest.raises(errors.AuthenticationRequired):
        sessions.authenticate_token(db_session, token=issued.token, settings=settings, now=T0)


def test_rotate_session_slides_expiry_but_keeps_absolute_expiry(db_session, issued, settings):
    absolute = issued.session.absolute_expires_at
    later = T0 + timedelta(minutes=10)

    rotated = sessions.rotate_session(db_session, session=issued.session, presented_token=issued.token,
                                      settings=settings, now=later)

    assert rotated.session.expires_at == later + idle(settings)
    assert rotated.session.absolute_expires_at == absolute


def test_rotate_session_with_already_rotated_token_raises(db_session, issued, settings):
    """A concurrent refresh that lost the race presents the old token; it must not rotate again."""
    sessions.rotate_session(db_session, session=issued.session, presented_token=issued.token,
                            settings=settings, now=T0)

    with pytest.raises(errors.AuthenticationRequired):
        sessions.rotate_session(db_session, session=issued.session, presented_token=issued.token,
                                settings=settings, now=T0)


def test_rotate_session_after_end_raises(db_session, issued, settings):
    sessions.end_session(db_session, session_id=issued.session.id, reason=SessionEndReason.LOGOUT, now=T0)

    with pytest.raises(errors.AuthenticationRequired):
        sessions.rotate_session(db_session, session=issued.session, presented_token=issued.token,
                                settings=settings, now=T0)


def test_refresh_session_records_audit_event(db_session, actor, issued, settings):
    sessions.refresh_session(db_session, actor=actor, session=issued.session, presented_token=issued.token,
                             settings=settings, now=T0)

    [event] = db_session.scalars(select(AuditEvent)).all()
    assert (event.action, event.target_id) == ("auth.session_refreshed", str(issued.session.id))


def test_end_session_twice_returns_false_the_second_time(db_session, issued):
    first = sessions.end_session(db_session, session_id=issued.session.id, reason=SessionEndReason.LOGOUT)
    second = sessions.end_session(db_session, session_id=issued.session.id, reason=SessionEndReason.REVOKED)

    assert (first, second) == (True, False)
    db_session.expire_all()
    assert db_session.get(UserSession, issued.session.id).end_reason == SessionEndReason.LOGOUT


def test_end_user_sessions_keeps_the_given_session(db_session, user, issued, settings):
    others = [sessions.start_session(db_session, user=user, settings=settings, now=T0) for _ in range(2)]
    stranger = sessions.start_session(db_session, user=UserFactory(), settings=settings, now=T0)

    ended = sessions.end_user_sessions(db_session, user_id=user.id, reason=SessionEndReason.PASSWORD_CHANGED,
                                       keep_session_id=issued.session.id, now=T0)

    assert ended == 2
    db_session.expire_all()
    assert issued.session.ended_at is None
    assert stranger.session.ended_at is None
    assert all(o.session.end_reason == SessionEndReason.PASSWORD_CHANGED for o in others)


def test_logout_twice_raises(db_session, actor, issued):
    sessions.logout(db_session, actor=actor, session=issued.session)

    with pytest.raises(errors.AuthenticationRequired):
        sessions.logout(db_session, actor=actor, session=issued.session)


def test_logout_everywhere_ends_every_session_including_current(db_session, user, actor, issued, settings):
    sessions.start_session(db_session, user=user, settings=settings, now=T0)

    ended = sessions.logout_everywhere(db_session, actor=actor, user=user)

    assert ended == 2
    db_session.expire_all()
    assert issued.session.end_reason == SessionEndReason.LOGOUT_ALL


def test_list_live_sessions_returns_only_live_sessions_of_the_user_newest_first(db_session, user, settings):
    older = sessions.start_session(db_session, user=user, settings=settings, now=T0)
    newer = sessions.start_session(db_session, user=user, settings=settings, now=T0 + timedelta(minutes=1))
    ended = sessions.start_session(db_session, user=user, settings=settings, now=T0)
    sessions.end_session(db_session, session_id=ended.session.id, reason=SessionEndReason.LOGOUT)
    sessions.start_session(db_session, user=user, settings=settings, now=T0 - timedelta(days=1))  # expired
    sessions.start_session(db_session, user=UserFactory(), settings=settings, now=T0)

    live = sessions.list_live_sessions(db_session, user_id=user.id, now=T0 + timedelta(minutes=2))

    assert [s.id for s in live] == [newer.session.id, older.session.id]


def test_require_user_session_of_another_user_raises_not_found(db_session, issued):
    stranger = UserFactory()

    with pytest.raises(errors.NotFound):
        sessions.require_user_session(db_session, user_id=stranger.id, session_id=issued.session.id)


def test_revoke_session_already_ended_raises_not_found(db_session, user, actor, issued, settings):
    other = sessions.start_session(db_session, user=user, settings=settings, now=T0)
    sessions.revoke_session(db_session, actor=actor, user=user, session_id=other.session.id)

    with pytest.raises(errors.NotFound):
        sessions.revoke_session(db_session, actor=actor, user=user, session_id=other.session.id)


def test_expire_stale_sessions_ends_only_expired_sessions(db_session):
    now = datetime.now(UTC)
    expired = UserSessionFactory(created_at=now - timedelta(hours=1))
    at_expiry = UserSessionFactory(created_at=now - timedelta(minutes=15))
    live = UserSessionFactory(created_at=now)
    already_ended = UserSessionFactory(created_at=now - timedelta(hours=1), ended_at=now - timedelta(hours=1),
                                       end_reason=SessionEndReason.LOGOUT)

    count = sessions.expire_stale_sessions(db_session, now=now)

    assert count == 2
    db_session.expire_all()
    for row in (expired, at_expiry):
        assert (row.ended_at, row.end_reason) == (now, SessionEndReason.EXPIRED)
    assert live.ended_at is None
    assert already_ended.end_reason == SessionEndReason.LOGOUT
