"""services.authentication: password sign-in, failure counting and lockout."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import bcrypt
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


def test_login_with_correct_password_resets_the_count_of_its_address(db_session, user, settings):
    fail(db_session, settings, user, settings.LOGIN_MAX_FAILURES - 1)
    login(db_session, settings, user.email)

    fail(db_session, settings, user, settings.LOGIN_MAX_FAILURES - 1)

    assert login(db_session, settings, user.email).session.user_id == user.id


@pytest.mark.parametrize("max_failures", [1, 3, 5])
def test_login_at_failure_threshold_locks_the_address_out(db_session, user, settings, max_failures):
    settings = dataclasses.replace(settings, LOGIN_MAX_FAILURES=max_failures)
    fail(db_session, settings, user, max_failures - 1)

    with pytest.raises(errors.AccountLocked) as raised:
        login(db_session, settings, user.email, "not the password")

    assert raised.value.headers == {"Retry-After": str(settings.LOGIN_LOCKOUT_SECONDS)}
    assert raised.value.details == {}
    with pytest.raises(errors.AccountLocked):
        login(db_session, settings, user.email)


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


def test_login_after_lockout_expires_counts_from_zero(db_session, user, settings):
    fail(db_session, settings, user, settings.LOGIN_MAX_FAILURES)
    unlocked = T0 + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)

    fail(db_session, settings, user, settings.LOGIN_MAX_FAILURES - 1, now=unlocked)

    assert login(db_session, settings, user.email, now=unlocked).session.user_id == user.id


def test_login_failures_older_than_the_window_are_forgotten(db_session, user, settings):
    fail(db_session, settings, user, settings.LOGIN_MAX_FAILURES - 1)
    window_over = T0 + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)

    with pytest.raises(errors.InvalidCredentials):
        login(db_session, settings, user.email, "not the password", now=window_over)


def test_login_locked_from_one_address_still_signs_in_from_another(db_session, user, settings):
    """An attacker's failures lock the attacker's address out, not the owner."""
    fail(db_session, settings, user, settings.LOGIN_MAX_FAILURES)

    issued = authentication.login(db_session, actor=replace(ACTOR, ip="198.51.100.9"), email=user.email,
                                  password=DEFAULT_PASSWORD, settings=settings, now=T0)

    assert issued.session.user_id == user.id


def test_login_failures_from_one_ipv6_64_count_together(db_session, user, settings):
    """A host picks any address in its /64; counting each one apart would give it unlimited guesses."""
    for n in range(1, settings.LOGIN_MAX_FAILURES + 1):
        with pytest.raises((errors.InvalidCredentials, errors.AccountLocked)):
            authentication.login(db_session, actor=replace(ACTOR, ip=f"2001:db8:1:2::{n:x}"), email=user.email,
                                 password="not the password", settings=settings, now=T0)

    with pytest.raises(errors.AccountLocked):
        authentication.login(db_session, actor=replace(ACTOR, ip="2001:db8:1:2:ffff::1"), email=user.email,
                             password=DEFAULT_PASSWORD, settings=settings, now=T0)
    assert authentication.login(db_session, actor=replace(ACTOR, ip="2001:db8:1:3::1"), email=user.email,
                                password=DEFAULT_PASSWORD, settings=settings, now=T0).session.user_id == user.id


def fail_from_many_addresses(db_session, settings, email: str, times: int) -> None:
    """`times` failures for `email`, each from its own address: no address reaches its lock."""
    for n in range(times):
        with pytest.raises(errors.InvalidCredentials):
            authentication.login(db_session, actor=replace(ACTOR, ip=f"203.0.113.{n + 1}"), email=email,
                                 password="not the password", settings=settings, now=T0)


@pytest.mark.parametrize("email", [None, "nobody@example.com"], ids=["account", "unknown-email"])
def test_login_beyond_the_account_threshold_is_throttled(db_session, user, settings, email):
    email = email or user.email
    fail_from_many_addresses(db_session, settings, email, settings.LOGIN_ACCOUNT_THROTTLE_FAILURES)

    with pytest.raises(errors.SignInThrottled) as raised:
        login(db_session, settings, email, now=T0 + timedelta(seconds=1))

    assert (raised.value.status, raised.value.type) == (429, "RATE_LIMITED")
    assert raised.value.headers == {"Retry-After": str(settings.LOGIN_ACCOUNT_THROTTLE_SECONDS - 1)}


def test_login_beyond_the_account_threshold_is_slowed_not_locked(db_session, user, settings):
    """Once the throttle's interval has passed, the owner's right password works: a wait, not a lock."""
    fail_from_many_addresses(db_session, settings, user.email, settings.LOGIN_ACCOUNT_THROTTLE_FAILURES)

    next_slot = T0 + timedelta(seconds=settings.LOGIN_ACCOUNT_THROTTLE_SECONDS)

    issued = login(db_session, settings, user.email, now=next_slot)

    assert issued.session.user_id == user.id


def test_login_beyond_the_account_threshold_checks_one_attempt_per_interval(db_session, user, settings):
    fail_from_many_addresses(db_session, settings, user.email, settings.LOGIN_ACCOUNT_THROTTLE_FAILURES)
    next_slot = T0 + timedelta(seconds=settings.LOGIN_ACCOUNT_THROTTLE_SECONDS)

    with pytest.raises(errors.InvalidCredentials):
        login(db_session, settings, user.email, "not the password", now=next_slot)
    with pytest.raises(errors.SignInThrottled):
        login(db_session, settings, user.email, now=next_slot + timedelta(seconds=1))


def test_login_account_throttle_ends_with_its_window(db_session, user, settings):
    fail_from_many_addresses(db_session, settings, user.email, settings.LOGIN_ACCOUNT_THROTTLE_FAILURES)
    window_over = T0 + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)

    with pytest.raises(errors.InvalidCredentials):
        login(db_session, settings, user.email, "not the password", now=window_over)
    with pytest.raises(errors.InvalidCredentials):
        login(db_session, settings, user.email, "not the password", now=window_over)


def refusals(db_session, settings, email: str, password: str) -> list[tuple]:
    """What LOGIN_MAX_FAILURES wrong passwords for `email` and then `password` raise, as a client sees it."""
    seen = []
    for attempt in ["not the password"] * settings.LOGIN_MAX_FAILURES + [password]:
        with pytest.raises(errors.AppError) as raised:
            login(db_session, settings, email, attempt)
        error = raised.value
        seen.append((error.status, error.type, error.message, error.details, error.headers))
    return seen


def test_login_refuses_a_locked_account_and_an_unknown_email_alike(db_session, user, settings):
    """Counting only accounts would make the lock itself say which emails exist."""
    account = refusals(db_session, settings, user.email, DEFAULT_PASSWORD)
    unknown = refusals(db_session, settings, "nobody@example.com", DEFAULT_PASSWORD)

    assert account == unknown
    assert [status for status, *_ in account] == [401] * (settings.LOGIN_MAX_FAILURES - 1) + [423, 423]


def throttle(db_session, settings, email: str) -> None:
    fail_from_many_addresses(db_session, settings, email, settings.LOGIN_ACCOUNT_THROTTLE_FAILURES)


def lock(db_session, settings, email: str) -> None:
    for _ in range(settings.LOGIN_MAX_FAILURES):
        with pytest.raises((errors.InvalidCredentials, errors.AccountLocked)):
            login(db_session, settings, email, "not the password")


@pytest.mark.parametrize("state, known, error", [
    (None, False, errors.InvalidCredentials),
    (None, True, errors.InvalidCredentials),
    (lock, False, errors.AccountLocked),
    (lock, True, errors.AccountLocked),
    (throttle, False, errors.SignInThrottled),
    (throttle, True, errors.SignInThrottled),
], ids=["unknown", "wrong-password", "unknown-locked", "account-locked", "unknown-throttled", "account-throttled"])
def test_login_refusal_costs_one_bcrypt_check(db_session, user, settings, monkeypatch, state, known, error):
    """Every answer costs the same bcrypt work, so timing tells neither whether the account exists nor
    whether it is locked: count what bcrypt itself is asked to check, at the configured cost."""
    email = user.email if known else "nobody@example.com"
    if state:
        state(db_session, settings, email)
    checked = []
    real_checkpw = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, hashed: checked.append(hashed) or real_checkpw(pw, hashed))

    with pytest.raises(error):
        login(db_session, settings, email, "not the password")

    assert [hashed[:7] for hashed in checked] == [f"$2b${settings.BCRYPT_ROUNDS:02d}$".encode()]


def test_login_for_suspended_user_raises_and_starts_no_session(db_session, settings):
    user = UserFactory(status=UserStatus.SUSPENDED)

    with pytest.raises(errors.AccountSuspended):
        login(db_session, settings, user.email)

    assert session_count(db_session) == 0


def test_login_failure_is_recorded_in_the_transaction(db_session, user, settings):
    """The API commits after the error, so the service must have added the event before raising."""
    fail(db_session, settings, user, 1)

    [event] = db_session.scalars(select(AuditEvent)).all()
    assert (event.action, event.result, event.details) == ("auth.login", "failure", {"method": "password", "reason": "bad_password"})
    assert (event.actor_user_id, event.ip, event.request_id) == (user.id, "192.0.2.1", "req-00000001")


def test_login_success_records_audit_event_for_the_session(db_session, user, settings):
    issued = login(db_session, settings, user.email)

    [event] = db_session.scalars(select(AuditEvent)).all()
    assert (event.action, event.result, event.actor_user_id) == ("auth.login", "success", user.id)
    assert (event.target_type, event.target_id) == ("session", str(issued.session.id))
