"""services.authentication: password sign-in, failure counting and lockout."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app import errors
from app.models import AuditEvent, UserSession, UserStatus
from app.services import authentication
from app.services.actor import Actor
from tests.factories import DEFAULT_PASSWORD, UserFactory, UserSessionFactory

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ACTOR = Actor(user=None, ip="192.0.2.1", user_agent="pytest", request_id="req-00000001")


def login(db_session, settings, email: str, password: str = DEFAULT_PASSWORD, now: datetime = T0):
    return authentication.login(db_session, actor=ACTOR, email=email, password=password, settings=settings,
                                now=now)


def fail(db_session, settings, user, times: int, now: datetime = T0) -> None:
    for _ in range(times):
        with pytest.raises((errors.InvalidCredentials, errors.AccountLocked)):
            login(db_session, settings, user.email, "not the password", now=now)


def session_count(db_session) -> int:
    return db_session.scalar(select(func.count()).select_from(UserSession))


def test_login_with_correct_password_starts_session(db_session, user, settings):
    issued = login(db_session, settings, user.email)

    assert issued.session.user_id == user.id
    assert issued.session.created_at == T0
    assert (issued.session.ip, issued.session.user_agent) == ("192.0.2.1", "pytest")


def test_login_ends_the_session_it_replaces_only_when_it_succeeds(db_session, user, settings):
    """A browser signing in again (perhaps as someone else) keeps one signed-in user."""
    other = UserFactory()
    previous = UserSessionFactory(user=other, kind="browser")

    with pytest.raises(errors.InvalidCredentials):
        authentication.login(db_session, actor=Actor(user=None), email=user.email, password="wrong password",
                             settings=settings, previous_session_id=previous.id)
    assert db_session.get(UserSession, previous.id).ended_at is None

    authentication.login(db_session, actor=Actor(user=None), email=user.email, password=DEFAULT_PASSWORD,
                         settings=settings, previous_session_id=previous.id)
    db_session.refresh(previous)
    assert (previous.ended_at is not None, previous.end_reason) == (True, "logout")


def test_login_email_is_case_insensitive(db_session, settings):
    user = UserFactory(email="mixed@example.com")

    issued = login(db_session, settings, "  Mixed@EXAMPLE.com ")

    assert issued.session.user_id == user.id


@pytest.mark.parametrize("email, password", [
    ("nobody@example.com", DEFAULT_PASSWORD),
    (None, "not the password"),
    (None, "é" * 40),
], ids=["unknown-email", "wrong-password", "password-over-72-bytes"])
def test_login_with_bad_credentials_raises_invalid_credentials(db_session, user, settings, email, password):
    with pytest.raises(errors.InvalidCredentials):
        login(db_session, settings, email or user.email, password)

    assert session_count(db_session) == 0


def test_login_for_user_without_password_raises_invalid_credentials(db_session, settings):
    user = UserFactory(password_hash=None)

    with pytest.raises(errors.InvalidCredentials):
        login(db_session, settings, user.email, "")


def test_login_with_wrong_password_counts_failure(db_session, user, settings):
    fail(db_session, settings, user, 2)

    assert user.failed_login_count == 2
    assert user.locked_until is None


def test_login_with_correct_password_resets_failure_count(db_session, user, settings):
    fail(db_session, settings, user, settings.LOGIN_MAX_FAILURES - 1)

    login(db_session, settings, user.email)

    assert user.failed_login_count == 0


@pytest.mark.parametrize("max_failures", [1, 3, 5])
def test_login_at_failure_threshold_locks_account(db_session, user, settings, max_failures):
    settings = dataclasses.replace(settings, LOGIN_MAX_FAILURES=max_failures)
    fail(db_session, settings, user, max_failures - 1)

    with pytest.raises(errors.AccountLocked) as raised:
        login(db_session, settings, user.email, "not the password")

    locked_until = T0 + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
    assert raised.value.details == {"locked_until": locked_until.isoformat()}
    assert raised.value.headers == {"Retry-After": str(settings.LOGIN_LOCKOUT_SECONDS)}
    db_session.commit()  # as the API does after a failed login
    assert user.locked_until == locked_until
    # The next lockout period starts from a clean count.
    assert user.failed_login_count == 0


def test_login_while_locked_rejects_correct_password(db_session, user, settings):
    fail(db_session, settings, user, settings.LOGIN_MAX_FAILURES)
    later = T0 + timedelta(seconds=100)

    with pytest.raises(errors.AccountLocked) as raised:
        login(db_session, settings, user.email, now=later)

    assert raised.value.headers["Retry-After"] == str(settings.LOGIN_LOCKOUT_SECONDS - 100)
    assert session_count(db_session) == 0


def test_login_after_lockout_expires_succeeds(db_session, user, settings):
    fail(db_session, settings, user, settings.LOGIN_MAX_FAILURES)
    unlocked = T0 + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)

    issued = login(db_session, settings, user.email, now=unlocked)

    assert issued.session.user_id == user.id
    assert user.locked_until is None


def test_login_for_suspended_user_raises_and_starts_no_session(db_session, settings):
    user = UserFactory(status=UserStatus.SUSPENDED)

    with pytest.raises(errors.AccountSuspended):
        login(db_session, settings, user.email)

    assert session_count(db_session) == 0


def test_login_failure_is_recorded_in_the_transaction(db_session, user, settings):
    """The API commits after the error, so the service must have added the event before raising."""
    fail(db_session, settings, user, 1)

    [event] = db_session.scalars(select(AuditEvent)).all()
    assert (event.action, event.result, event.details) == ("auth.login", "failure", {"reason": "bad_password"})
    assert (event.actor_user_id, event.ip, event.request_id) == (user.id, "192.0.2.1", "req-00000001")


def test_login_success_records_audit_event_for_the_session(db_session, user, settings):
    issued = login(db_session, settings, user.email)

    [event] = db_session.scalars(select(AuditEvent)).all()
    assert (event.action, event.result, event.actor_user_id) == ("auth.login", "success", user.id)
    assert (event.target_type, event.target_id) == ("session", str(issued.session.id))
