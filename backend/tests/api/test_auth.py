"""/api/v1/auth: registration, sign-in, lockout and the caller's sessions."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

import bcrypt
import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import AuditEvent, SessionEndReason, User, UserSession, UserStatus
from app.models.base import utcnow
from app.security import passwords
from app.security.tokens import hash_token
from app.services import authentication
from tests.conftest import count_sql
from tests.factories import DEFAULT_PASSWORD, UserFactory, UserSessionFactory

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
LOGOUT_ALL = "/api/v1/auth/logout-all"
ME = "/api/v1/auth/me"
SESSIONS = "/api/v1/auth/sessions"
REFRESH = "/api/v1/auth/sessions/refresh"

PROTECTED = [
    ("POST", LOGOUT),
    ("POST", LOGOUT_ALL),
    ("GET", ME),
    ("GET", SESSIONS),
    ("POST", REFRESH),
    ("DELETE", f"{SESSIONS}/{uuid.uuid4()}"),
]


def audit_events(db_session, action: str) -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def session_row(db_session, session_id) -> UserSession:
    return db_session.get(UserSession, uuid.UUID(str(session_id)))


def sign_in(api, user, password: str = DEFAULT_PASSWORD, **kwargs):
    response = api.post(LOGIN, json={"email": user.email, "password": password}, **kwargs)
    assert response.status == 200, response.body
    return response.data


def assert_unauthenticated(response) -> None:
    assert response.status == 401
    assert response.error_type == "AUTHENTICATION_ERROR"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- register ---------------------------------------------------------------


def test_register_creates_user_with_lowercased_email(api, db_session):
    response = api.post(REGISTER, json={"email": "Alice@Example.COM", "password": "a long passphrase",
                                        "name": "Alice"})

    assert response.status == 201
    assert response.data["email"] == "alice@example.com"
    assert response.data["name"] == "Alice"
    assert "password" not in response.data and "password_hash" not in response.data
    user = db_session.scalar(select(User))
    assert str(user.id) == response.data["id"]
    assert user.email == "alice@example.com"
    assert passwords.verify_password("a long passphrase", user.password_hash)


def test_register_records_audit_event(api, db_session):
    response = api.post(REGISTER, json={"email": "alice@example.com", "password": "a long passphrase"})

    [event] = audit_events(db_session, "auth.register")
    assert event.result == "success"
    assert str(event.actor_user_id) == response.data["id"]
    assert event.request_id == response.headers["X-Request-ID"]


@pytest.mark.parametrize("email", ["taken@example.com", "TAKEN@Example.com"])
def test_register_with_taken_email_returns_409(api, db_session, email):
    UserFactory(email="taken@example.com")

    response = api.post(REGISTER, json={"email": email, "password": "a long passphrase"})

    assert response.status == 409
    assert response.error_type == "CONFLICT"
    assert "email" in response.body["error"]["details"]
    assert db_session.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.parametrize("payload, field", [
    ({"email": "not-an-email", "password": "a long passphrase"}, "email"),
    ({"password": "a long passphrase"}, "email"),
    ({"email": "alice@example.com", "password": "short"}, "password"),
    ({"email": "alice@example.com", "password": "password123"}, "password"),
    ({"email": "alice@example.com", "password": "é" * 40}, "password"),
    ({"email": "alice@example.com"}, "password"),
    ({"email": "alice@example.com", "password": "a long passphrase", "is_platform_admin": True},
     "is_platform_admin"),
], ids=["bad-email", "missing-email", "short-password", "common-password", "password-over-72-bytes",
        "missing-password", "unknown-field"])
def test_register_with_invalid_field_returns_422(api, db_session, payload, field):
    response = api.post(REGISTER, json=payload)

    assert response.status == 422
    assert response.error_type == "VALIDATION_ERROR"
    assert list(response.body["error"]["details"]) == [field]
    assert db_session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.parametrize("body", ["[]", '"alice@example.com"', "null"])
def test_register_with_non_object_json_returns_422(api, body):
    response = api.post(REGISTER, data=body, content_type="application/json")

    assert response.status == 422
    assert response.error_type == "VALIDATION_ERROR"


def test_register_with_form_body_returns_415(api):
    response = api.post(REGISTER, data={"email": "alice@example.com", "password": "a long passphrase"})

    assert response.status == 415
    assert response.error_type == "UNSUPPORTED_MEDIA_TYPE"


def test_register_with_malformed_json_returns_400(api):
    response = api.post(REGISTER, data='{"email": "alice@example.com",', content_type="application/json")

    assert response.status == 400
    assert response.error_type == "BAD_REQUEST"


# --- login ------------------------------------------------------------------


def test_login_returns_token_for_a_live_session(api, db_session, user):
    response = api.post(LOGIN, json={"email": user.email, "password": DEFAULT_PASSWORD})

    assert response.status == 200
    assert response.data["token_type"] == "Bearer"
    row = session_row(db_session, response.data["session_id"])
    assert row.user_id == user.id
    assert row.token_hash == hash_token(response.data["token"])
    assert datetime.fromisoformat(response.data["expires_at"]) == row.expires_at
    assert datetime.fromisoformat(response.data["absolute_expires_at"]) == row.absolute_expires_at
    assert api.get(ME, token=response.data["token"]).status == 200


def test_login_response_is_not_cached(api, user):
    response = api.post(LOGIN, json={"email": user.email, "password": DEFAULT_PASSWORD})

    assert response.headers["Cache-Control"] == "no-store"


def test_login_email_is_case_insensitive(api, user):
    response = api.post(LOGIN, json={"email": user.email.upper(), "password": DEFAULT_PASSWORD})

    assert response.status == 200


def test_login_wrong_password_and_unknown_email_look_the_same(api, user):
    wrong_password = api.post(LOGIN, json={"email": user.email, "password": "not the password"})
    unknown_email = api.post(LOGIN, json={"email": "nobody@example.com", "password": "not the password"})

    assert wrong_password.status == unknown_email.status == 401
    assert wrong_password.error_type == unknown_email.error_type == "AUTHENTICATION_ERROR"
    assert wrong_password.body["message"] == unknown_email.body["message"]
    assert wrong_password.body["error"] == unknown_email.body["error"]
    assert wrong_password.headers["WWW-Authenticate"] == unknown_email.headers["WWW-Authenticate"]


def test_login_with_unknown_email_still_checks_a_bcrypt_hash(api, settings, monkeypatch):
    """Without the dummy check an unknown email answers faster, revealing which accounts exist."""
    real_verify = passwords.verify_password
    checked_hashes = []

    def counting_verify(password: str, password_hash: str) -> bool:
        checked_hashes.append(password_hash)
        return real_verify(password, password_hash)

    monkeypatch.setattr(passwords, "verify_password", counting_verify)

    response = api.post(LOGIN, json={"email": "nobody@example.com", "password": "not the password"})

    assert response.status == 401
    assert len(checked_hashes) == 1
    assert checked_hashes[0].startswith(f"$2b${settings.BCRYPT_ROUNDS:02d}$")


@pytest.fixture
def clock(monkeypatch) -> list[datetime]:
    """Sign-in's clock, standing still at clock[0] until a test moves it: the answers compared
    below carry Retry-After, which a second ticking by between two of them would change."""
    now = [utcnow()]
    monkeypatch.setattr(authentication, "utcnow", lambda: now[0])
    return now


def attempt(api, email: str, password: str, ip: str = "127.0.0.1"):
    return api.post(LOGIN, json={"email": email, "password": password}, environ_base={"REMOTE_ADDR": ip})


def fail_times(api, email: str, times: int, ip: str = "127.0.0.1") -> list[int]:
    return [attempt(api, email, "not the password", ip).status for _ in range(times)]


def as_seen(response) -> tuple:
    """A response as a client sees it, without what differs on every request: the request id, the
    date and the Content-Security-Policy nonce."""
    body = {k: v for k, v in response.body.items() if k != "request_id"}
    headers = sorted((k, re.sub(r"'nonce-[^']+'", "'nonce'", v)) for k, v in response.headers.items()
                     if k not in {"X-Request-ID", "Date"})
    return response.status, body, headers


@pytest.mark.parametrize("last_password", [DEFAULT_PASSWORD, "not the password"], ids=["right", "wrong"])
def test_login_locked_account_and_unknown_email_answer_identically(api, user, settings, clock, last_password):
    """README: neither the answer nor its timing tells whether an account exists. The same failures
    (each email from its own address) give the same answers, the lock included."""
    def sequence(email: str, ip: str) -> list[tuple]:
        return [as_seen(attempt(api, email, password, ip))
                for password in ["not the password"] * settings.LOGIN_MAX_FAILURES + [last_password]]

    account = sequence(user.email, "192.0.2.10")
    unknown = sequence("nobody@example.com", "192.0.2.11")

    assert account == unknown
    assert [status for status, *_ in account] == [401] * (settings.LOGIN_MAX_FAILURES - 1) + [423, 423]
    assert dict(account[-1][2])["Retry-After"] == str(settings.LOGIN_LOCKOUT_SECONDS)


def test_login_unknown_email_locks_like_an_account(api, settings):
    statuses = fail_times(api, "nobody@example.com", settings.LOGIN_MAX_FAILURES + 1)

    assert statuses == [401] * (settings.LOGIN_MAX_FAILURES - 1) + [423, 423]


def test_login_victim_signs_in_from_another_address_while_the_attacker_is_locked(api, db_session, user, settings):
    """Five wrong passwords from one address used to lock the account for everyone for 30 minutes."""
    assert fail_times(api, user.email, settings.LOGIN_MAX_FAILURES, ip="203.0.113.66")[-1] == 423

    victim = attempt(api, user.email, DEFAULT_PASSWORD, ip="198.51.100.7")
    attacker = attempt(api, user.email, DEFAULT_PASSWORD, ip="203.0.113.66")

    assert victim.status == 200
    assert session_row(db_session, victim.data["session_id"]).user_id == user.id
    assert attacker.status == 423


def test_login_fifth_failure_from_an_address_locks_it_out(api, db_session, user, settings):
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        assert api.post(LOGIN, json={"email": user.email, "password": "not the password"}).status == 401

    response = api.post(LOGIN, json={"email": user.email, "password": "not the password"})

    assert response.status == 423
    assert response.error_type == "ACCOUNT_LOCKED"
    assert 0 < int(response.headers["Retry-After"]) <= settings.LOGIN_LOCKOUT_SECONDS
    assert response.body["error"]["details"] == {}


def test_login_after_lockout_rejects_correct_password_from_that_address(api, db_session, user, settings):
    for _ in range(settings.LOGIN_MAX_FAILURES):
        api.post(LOGIN, json={"email": user.email, "password": "not the password"})

    response = api.post(LOGIN, json={"email": user.email, "password": DEFAULT_PASSWORD})

    assert response.status == 423
    assert response.error_type == "ACCOUNT_LOCKED"
    assert "Retry-After" in response.headers
    assert db_session.scalar(select(func.count()).select_from(UserSession)) == 0


def fail_from_many_addresses(api, email: str, times: int) -> None:
    """`times` failures for `email`, each from its own address: no address reaches its lock."""
    assert {attempt(api, email, "not the password", f"203.0.113.{n + 1}").status for n in range(times)} == {401}


@pytest.mark.parametrize("known", [True, False], ids=["account", "unknown-email"])
def test_login_beyond_the_account_threshold_answers_429_with_retry_after(api, user, settings, clock, known):
    email = user.email if known else "nobody@example.com"
    fail_from_many_addresses(api, email, settings.LOGIN_ACCOUNT_THROTTLE_FAILURES)

    response = attempt(api, email, DEFAULT_PASSWORD, ip="198.51.100.7")

    assert (response.status, response.error_type) == (429, "RATE_LIMITED")
    assert response.headers["Retry-After"] == str(settings.LOGIN_ACCOUNT_THROTTLE_SECONDS)


def test_login_beyond_the_account_threshold_slows_but_does_not_lock(api, user, settings, clock):
    """Failures from many addresses together make the owner wait LOGIN_ACCOUNT_THROTTLE_SECONDS, not
    LOGIN_LOCKOUT_SECONDS."""
    fail_from_many_addresses(api, user.email, settings.LOGIN_ACCOUNT_THROTTLE_FAILURES)
    assert attempt(api, user.email, DEFAULT_PASSWORD, ip="198.51.100.7").status == 429

    clock[0] += timedelta(seconds=settings.LOGIN_ACCOUNT_THROTTLE_SECONDS)

    assert attempt(api, user.email, DEFAULT_PASSWORD, ip="198.51.100.7").status == 200


def test_login_throttled_account_and_unknown_email_answer_identically(api, user, settings, clock):
    fail_from_many_addresses(api, user.email, settings.LOGIN_ACCOUNT_THROTTLE_FAILURES)
    fail_from_many_addresses(api, "nobody@example.com", settings.LOGIN_ACCOUNT_THROTTLE_FAILURES)

    account = attempt(api, user.email, DEFAULT_PASSWORD, ip="198.51.100.7")
    unknown = attempt(api, "nobody@example.com", DEFAULT_PASSWORD, ip="198.51.100.8")

    assert as_seen(account) == as_seen(unknown)


@pytest.mark.parametrize("known", [True, False], ids=["account", "unknown-email"])
@pytest.mark.parametrize("password", [DEFAULT_PASSWORD, "not the password"], ids=["right", "wrong"])
def test_login_while_locked_still_checks_a_bcrypt_hash(api, user, settings, monkeypatch, known, password):
    """A lock answered without bcrypt's work would be faster than a 401, and say that the lock
    exists; bcrypt itself counts the checks, at the configured cost."""
    email = user.email if known else "nobody@example.com"
    fail_times(api, email, settings.LOGIN_MAX_FAILURES)
    checked = []
    real_checkpw = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, hashed: checked.append(hashed) or real_checkpw(pw, hashed))

    response = attempt(api, email, password)

    assert response.status == 423
    assert [hashed[:7] for hashed in checked] == [f"$2b${settings.BCRYPT_ROUNDS:02d}$".encode()]


@pytest.mark.parametrize("failures_before", [0, 5], ids=["first-failure", "locked"])
def test_login_runs_the_same_statements_for_an_account_and_an_unknown_email(api, app, user, failures_before):
    """The database work is the other half of the timing: the same statements, in the same order."""
    with app.app_context():
        engine = db.engine

    def statements_of(email: str, ip: str) -> list[str]:
        fail_times(api, email, failures_before, ip)
        with count_sql(engine) as statements:
            attempt(api, email, "not the password", ip)
        return statements

    assert statements_of(user.email, "192.0.2.10") == statements_of("nobody@example.com", "192.0.2.11")


def test_login_success_resets_the_count_of_its_address(api, db_session, user, settings):
    fail_times(api, user.email, settings.LOGIN_MAX_FAILURES - 1)

    sign_in(api, user)

    assert fail_times(api, user.email, settings.LOGIN_MAX_FAILURES - 1)[-1] == 401
    assert attempt(api, user.email, DEFAULT_PASSWORD).status == 200


def test_login_suspended_user_with_correct_password_returns_403(api, db_session):
    user = UserFactory(status=UserStatus.SUSPENDED)

    response = api.post(LOGIN, json={"email": user.email, "password": DEFAULT_PASSWORD})

    assert response.status == 403
    assert response.error_type == "PERMISSION_DENIED"
    assert db_session.scalar(select(func.count()).select_from(UserSession)) == 0


@pytest.mark.parametrize("user_fields, email, password, reason", [
    ({}, None, "not the password", "bad_password"),
    ({}, "nobody@example.com", DEFAULT_PASSWORD, "unknown_email"),
    ({"status": UserStatus.SUSPENDED}, None, DEFAULT_PASSWORD, "suspended"),
], ids=["bad_password", "unknown_email", "suspended"])
def test_login_failure_records_audit_reason(api, db_session, user_fields, email, password, reason):
    user = UserFactory(**user_fields)

    response = api.post(LOGIN, json={"email": email or user.email, "password": password})

    assert response.status >= 400
    [event] = audit_events(db_session, "auth.login")
    assert event.result == "failure"
    assert event.details == {"method": "password", "reason": reason}
    assert event.actor_user_id == (None if reason == "unknown_email" else user.id)
    assert event.request_id == response.headers["X-Request-ID"]


@pytest.mark.parametrize("known", [True, False], ids=["account", "unknown-email"])
def test_login_lockout_sequence_is_audited(api, db_session, user, settings, known):
    email, reason, actor = (user.email, "bad_password", user.id) if known else ("nobody@example.com",
                                                                                 "unknown_email", None)
    fail_times(api, email, settings.LOGIN_MAX_FAILURES)
    attempt(api, email, DEFAULT_PASSWORD)

    events = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.login")
                                .order_by(AuditEvent.occurred_at)).all()
    assert [e.details["reason"] for e in events] == (
        [reason] * (settings.LOGIN_MAX_FAILURES - 1) + [f"{reason}_locked", "locked"])
    assert {(e.result, e.actor_user_id) for e in events} == {("failure", actor)}


def test_login_throttled_attempt_is_audited(api, db_session, user, settings):
    fail_from_many_addresses(api, user.email, settings.LOGIN_ACCOUNT_THROTTLE_FAILURES)

    response = attempt(api, user.email, DEFAULT_PASSWORD, ip="198.51.100.7")

    [event] = [e for e in audit_events(db_session, "auth.login") if e.request_id == response.headers["X-Request-ID"]]
    assert (event.result, event.details, event.actor_user_id) == ("failure", {"method": "password", "reason": "throttled"}, user.id)


def test_login_success_records_audit_event_with_request_context(api, db_session, user):
    response = api.post(LOGIN, json={"email": user.email, "password": DEFAULT_PASSWORD},
                        headers={"User-Agent": "gatehouse-tests/1.0"})

    [event] = audit_events(db_session, "auth.login")
    assert event.result == "success"
    assert event.actor_user_id == user.id
    assert (event.target_type, event.target_id) == ("session", response.data["session_id"])
    assert event.ip == "127.0.0.1"
    assert event.user_agent == "gatehouse-tests/1.0"
    assert event.request_id == response.headers["X-Request-ID"]


def test_login_records_client_ip_and_user_agent_on_session(api, db_session, user):
    data = sign_in(api, user, headers={"User-Agent": "gatehouse-tests/1.0"},
                   environ_base={"REMOTE_ADDR": "198.51.100.7"})

    row = session_row(db_session, data["session_id"])
    assert (row.ip, row.user_agent) == ("198.51.100.7", "gatehouse-tests/1.0")


# --- authentication on every session endpoint ---------------------------------


@pytest.mark.parametrize("method, path", PROTECTED)
def test_protected_endpoint_without_token_returns_401(api, method, path):
    assert_unauthenticated(api.request(method, path))


@pytest.mark.parametrize("method, path", PROTECTED)
def test_protected_endpoint_with_garbage_token_returns_401(api, method, path):
    assert_unauthenticated(api.request(method, path, token="not-a-real-token"))


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_me_with_malformed_authorization_header_returns_401(api, authorization):
    assert_unauthenticated(api.get(ME, headers={"Authorization": authorization}))


def test_me_with_expired_session_returns_401(api):
    past = utcnow() - timedelta(hours=1)
    UserSessionFactory(token="expired-token", created_at=past - timedelta(minutes=15))

    assert_unauthenticated(api.get(ME, token="expired-token"))


def test_me_for_suspended_user_returns_401(api, db_session, user):
    token = sign_in(api, user)["token"]
    db_session.execute(update(User).where(User.id == user.id).values(status=UserStatus.SUSPENDED))

    assert_unauthenticated(api.get(ME, token=token))


# --- logout ----------------------------------------------------------------


def test_logout_ends_session(api, db_session, user):
    data = sign_in(api, user)

    response = api.post(LOGOUT, token=data["token"])

    assert response.status == 200
    row = session_row(db_session, data["session_id"])
    assert row.ended_at is not None
    assert row.end_reason == SessionEndReason.LOGOUT
    [event] = audit_events(db_session, "auth.logout")
    assert event.target_id == data["session_id"]


def test_logout_token_no_longer_authenticates(api, user):
    token = sign_in(api, user)["token"]
    api.post(LOGOUT, token=token)

    assert_unauthenticated(api.get(ME, token=token))


def test_logout_all_ends_every_session_of_the_user(api, db_session, user):
    tokens = [sign_in(api, user)["token"] for _ in range(3)]

    response = api.post(LOGOUT_ALL, token=tokens[0])

    assert response.status == 200
    assert response.data == {"sessions_ended": 3}
    rows = db_session.scalars(select(UserSession).where(UserSession.user_id == user.id)).all()
    assert len(rows) == 3
    assert all(row.ended_at is not None and row.end_reason == SessionEndReason.LOGOUT_ALL for row in rows)
    for token in tokens:
        assert_unauthenticated(api.get(ME, token=token))


def test_logout_all_leaves_other_users_sessions(api, db_session, user):
    other = UserFactory()
    other_token = sign_in(api, other)["token"]
    token = sign_in(api, user)["token"]

    api.post(LOGOUT_ALL, token=token)

    [row] = db_session.scalars(select(UserSession).where(UserSession.user_id == other.id)).all()
    assert row.ended_at is None
    assert api.get(ME, token=other_token).status == 200


# --- me and sessions ---------------------------------------------------------


def test_me_returns_user_and_current_session(api, user):
    data = sign_in(api, user)

    response = api.get(ME, token=data["token"])

    assert response.status == 200
    assert response.data["user"]["id"] == str(user.id)
    assert response.data["user"]["email"] == user.email
    assert "password_hash" not in response.data["user"]
    assert response.data["session"]["id"] == data["session_id"]
    assert response.data["session"]["current"] is True


def test_me_slides_session_expiry(api, db_session, user):
    data = sign_in(api, user)
    soon = utcnow() + timedelta(seconds=30)
    db_session.execute(update(UserSession).where(UserSession.id == uuid.UUID(data["session_id"]))
                       .values(expires_at=soon, last_seen_at=utcnow() - timedelta(minutes=2)))

    api.get(ME, token=data["token"])

    assert session_row(db_session, data["session_id"]).expires_at > soon


def test_use_within_a_minute_of_the_recorded_one_writes_nothing(api, db_session, user):
    """services.sessions.activity_interval: the request is served, the session row is left as it was."""
    data = sign_in(api, user)
    before = session_row(db_session, data["session_id"])
    recorded = (before.last_seen_at, before.expires_at)

    assert api.get(ME, token=data["token"]).status == 200

    db_session.expire_all()
    after = session_row(db_session, data["session_id"])
    assert (after.last_seen_at, after.expires_at) == recorded


def test_list_sessions_returns_only_callers_live_sessions(api, db_session, user, settings):
    current = sign_in(api, user)
    other_live = sign_in(api, user)
    ended = sign_in(api, user)
    api.post(LOGOUT, token=ended["token"])
    UserSessionFactory(user=user, created_at=utcnow() - timedelta(hours=1))  # idle-expired
    sign_in(api, UserFactory())

    response = api.get(SESSIONS, token=current["token"])

    assert response.status == 200
    assert {s["id"] for s in response.data} == {current["session_id"], other_live["session_id"]}
    assert [s["id"] for s in response.data if s["current"]] == [current["session_id"]]


def test_list_sessions_shows_session_fields_without_secrets(api, user):
    token = sign_in(api, user, headers={"User-Agent": "gatehouse-tests/1.0"})["token"]

    [session] = api.get(SESSIONS, token=token).data

    assert set(session) == {"id", "created_at", "last_seen_at", "expires_at", "absolute_expires_at",
                            "ip", "user_agent", "current"}
    assert (session["ip"], session["user_agent"]) == ("127.0.0.1", "gatehouse-tests/1.0")


# --- refresh -----------------------------------------------------------------


def test_refresh_session_issues_working_token_and_invalidates_old(api, db_session, user):
    data = sign_in(api, user)

    response = api.post(REFRESH, token=data["token"])

    assert response.status == 200
    new_token = response.data["token"]
    assert new_token != data["token"]
    assert response.data["session_id"] == data["session_id"]
    assert session_row(db_session, data["session_id"]).token_hash == hash_token(new_token)
    assert api.get(ME, token=new_token).status == 200
    assert_unauthenticated(api.get(ME, token=data["token"]))


def test_refresh_session_moves_expiry_but_not_absolute_expiry(api, db_session, user):
    data = sign_in(api, user)
    soon = utcnow() + timedelta(seconds=30)
    db_session.execute(update(UserSession).where(UserSession.id == uuid.UUID(data["session_id"]))
                       .values(expires_at=soon))

    response = api.post(REFRESH, token=data["token"])

    row = session_row(db_session, data["session_id"])
    assert datetime.fromisoformat(response.data["expires_at"]) == row.expires_at > soon
    assert response.data["absolute_expires_at"] == data["absolute_expires_at"]
    assert row.absolute_expires_at == datetime.fromisoformat(data["absolute_expires_at"])


def test_refresh_session_response_is_not_cached(api, user):
    response = api.post(REFRESH, token=sign_in(api, user)["token"])

    assert response.headers["Cache-Control"] == "no-store"


def test_refresh_session_records_audit_event(api, db_session, user):
    data = sign_in(api, user)

    api.post(REFRESH, token=data["token"])

    [event] = audit_events(db_session, "auth.session_refreshed")
    assert (event.actor_user_id, event.target_id) == (user.id, data["session_id"])


# --- revoke one session -----------------------------------------------------


def test_revoke_session_ends_that_session(api, db_session, user):
    current = sign_in(api, user)
    other = sign_in(api, user)

    response = api.delete(f"{SESSIONS}/{other['session_id']}", token=current["token"])

    assert response.status == 200
    assert response.data["id"] == other["session_id"]
    assert response.data["current"] is False
    row = session_row(db_session, other["session_id"])
    assert row.ended_at is not None
    assert row.end_reason == SessionEndReason.REVOKED
    assert_unauthenticated(api.get(ME, token=other["token"]))
    assert api.get(ME, token=current["token"]).status == 200


def test_revoke_session_of_another_user_returns_404(api, db_session, user):
    token = sign_in(api, user)["token"]
    victim = sign_in(api, UserFactory())

    response = api.delete(f"{SESSIONS}/{victim['session_id']}", token=token)

    assert response.status == 404
    assert response.error_type == "NOT_FOUND"
    assert session_row(db_session, victim["session_id"]).ended_at is None
    assert api.get(ME, token=victim["token"]).status == 200


def test_revoke_session_with_unknown_id_returns_404(api, user):
    token = sign_in(api, user)["token"]

    response = api.delete(f"{SESSIONS}/{uuid.uuid4()}", token=token)

    assert response.status == 404
    assert response.error_type == "NOT_FOUND"


def test_revoke_session_already_ended_returns_404(api, user):
    current = sign_in(api, user)
    other = sign_in(api, user)
    api.post(LOGOUT, token=other["token"])

    response = api.delete(f"{SESSIONS}/{other['session_id']}", token=current["token"])

    assert response.status == 404


def test_revoke_session_with_non_uuid_id_returns_404_envelope(api, user):
    token = sign_in(api, user)["token"]

    response = api.delete(f"{SESSIONS}/not-a-uuid", token=token)

    assert response.status == 404
    assert response.error_type == "NOT_FOUND"
