"""/api/v1/users/me: the signed-in user's own account."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, SessionEndReason, User, UserSession
from app.security import passwords
from app.security.tokens import hash_token
from tests.factories import DEFAULT_PASSWORD, UserFactory

ME = "/api/v1/users/me"
PASSWORD = "/api/v1/users/me/password"
LOGIN = "/api/v1/auth/login"
AUTH_ME = "/api/v1/auth/me"
NEW_PASSWORD = "a different long passphrase"

PROTECTED = [("GET", ME), ("PATCH", ME), ("DELETE", ME), ("POST", PASSWORD)]


def audit_events(db_session, action: str) -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def session_id_of(db_session, token: str) -> uuid.UUID:
    return db_session.scalar(select(UserSession.id).where(UserSession.token_hash == hash_token(token)))


@pytest.mark.parametrize("method, path", PROTECTED)
@pytest.mark.parametrize("token", [None, "not-a-real-token"], ids=["no-token", "garbage-token"])
def test_endpoint_without_valid_token_returns_401(api, method, path, token):
    response = api.request(method, path, token=token, json={})

    assert response.status == 401
    assert response.error_type == "AUTHENTICATION_ERROR"
    assert "WWW-Authenticate" in response.headers


# --- profile -----------------------------------------------------------------


def test_get_me_returns_profile(api, user, login):
    response = api.get(ME, token=login(user))

    assert response.status == 200
    assert response.data["id"] == str(user.id)
    assert response.data["email"] == user.email
    assert response.data["status"] == "active"
    assert "password_hash" not in response.data


def test_update_me_changes_name(api, db_session, user, login):
    response = api.patch(ME, token=login(user), json={"name": "New Name"})

    assert response.status == 200
    assert response.data["name"] == "New Name"
    db_session.refresh(user)
    assert user.name == "New Name"


def test_update_me_records_audit_event(api, db_session, user, login):
    response = api.patch(ME, token=login(user), json={"name": "New Name"})

    [event] = audit_events(db_session, "user.updated")
    assert (event.actor_user_id, event.target_id) == (user.id, str(user.id))
    assert event.details == {"fields": ["name"]}
    assert event.request_id == response.headers["X-Request-ID"]


@pytest.mark.parametrize("payload, field", [
    ({"email": "new@example.com"}, "email"),
    ({"is_platform_admin": True}, "is_platform_admin"),
    ({"status": "active"}, "status"),
    ({"name": "x" * 201}, "name"),
    ({"name": 42}, "name"),
], ids=["email-not-editable", "admin-flag", "status", "name-too-long", "name-not-string"])
def test_update_me_with_invalid_field_returns_422(api, db_session, user, login, payload, field):
    before = (user.email, user.name, user.is_platform_admin, user.status)

    response = api.patch(ME, token=login(user), json=payload)

    assert response.status == 422
    assert response.error_type == "VALIDATION_ERROR"
    assert list(response.body["error"]["details"]) == [field]
    db_session.refresh(user)
    assert (user.email, user.name, user.is_platform_admin, user.status) == before
    assert audit_events(db_session, "user.updated") == []


# --- password ----------------------------------------------------------------


def test_change_password_with_wrong_current_password_returns_401(api, db_session, user, login):
    old_hash = user.password_hash
    token = login(user)

    response = api.post(PASSWORD, token=token, json={"current_password": "not the password",
                                                      "new_password": NEW_PASSWORD})

    assert response.status == 401
    assert response.error_type == "AUTHENTICATION_ERROR"
    db_session.refresh(user)
    assert user.password_hash == old_hash
    assert api.get(AUTH_ME, token=token).status == 200


def confirm_password(api, action: str, token: str, password: str, ip: str = "127.0.0.1"):
    """Confirm the current password for `action` (change it, or delete the account) with `token` from `ip`."""
    if action == "change":
        return api.post(PASSWORD, token=token, json={"current_password": password, "new_password": NEW_PASSWORD},
                        environ_base={"REMOTE_ADDR": ip})
    return api.delete(ME, token=token, json={"password": password}, environ_base={"REMOTE_ADDR": ip})


@pytest.mark.parametrize("action", ["change", "delete"])
def test_current_password_guesses_through_a_session_lock_that_address_out(api, db_session, user, login, settings,
                                                                         action):
    """A stolen session guesses its owner's password no faster than the sign-in form: the same counter
    per (email, address), so the right password is then refused from that address, and only there."""
    token = login(user)
    statuses = [confirm_password(api, action, token, "not the password", "203.0.113.66").status
                for _ in range(settings.LOGIN_MAX_FAILURES)]

    refused = confirm_password(api, action, token, DEFAULT_PASSWORD, "203.0.113.66")

    assert statuses == [401] * (settings.LOGIN_MAX_FAILURES - 1) + [423]
    assert (refused.status, refused.error_type) == (423, "ACCOUNT_LOCKED")
    assert db_session.get(User, user.id) is not None
    assert confirm_password(api, action, token, DEFAULT_PASSWORD, "198.51.100.7").status == 200


def test_current_password_failures_count_with_sign_in_failures(api, user, login, settings):
    token = login(user)
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        assert confirm_password(api, "change", token, "not the password").status == 401

    response = api.post(LOGIN, json={"email": user.email, "password": "not the password"})

    assert response.status == 423


@pytest.mark.parametrize("new_password", ["short", "password123", "é" * 40],
                         ids=["short", "common", "over-72-bytes"])
def test_change_password_with_weak_new_password_returns_422(api, db_session, user, login, new_password):
    old_hash = user.password_hash

    response = api.post(PASSWORD, token=login(user), json={"current_password": DEFAULT_PASSWORD,
                                                           "new_password": new_password})

    assert response.status == 422
    assert response.error_type == "VALIDATION_ERROR"
    assert list(response.body["error"]["details"]) == ["new_password"]
    db_session.refresh(user)
    assert user.password_hash == old_hash


def test_change_password_ends_other_sessions_only(api, db_session, user, login):
    current = login(user)
    others = [login(user), login(user)]
    stranger_token = login(UserFactory())

    response = api.post(PASSWORD, token=current, json={"current_password": DEFAULT_PASSWORD,
                                                       "new_password": NEW_PASSWORD})

    assert response.status == 200
    assert response.data == {"sessions_ended": 2}
    for token in others:
        row = db_session.get(UserSession, session_id_of(db_session, token))
        assert row.ended_at is not None
        assert row.end_reason == SessionEndReason.PASSWORD_CHANGED
        assert api.get(AUTH_ME, token=token).status == 401
    assert api.get(AUTH_ME, token=current).status == 200
    assert api.get(AUTH_ME, token=stranger_token).status == 200


def test_change_password_replaces_the_password_for_login(api, user, login):
    api.post(PASSWORD, token=login(user), json={"current_password": DEFAULT_PASSWORD,
                                                "new_password": NEW_PASSWORD})

    old = api.post(LOGIN, json={"email": user.email, "password": DEFAULT_PASSWORD})
    new = api.post(LOGIN, json={"email": user.email, "password": NEW_PASSWORD})

    assert old.status == 401
    assert new.status == 200


def test_change_password_records_audit_event(api, db_session, user, login):
    token = login(user)
    login(user)

    response = api.post(PASSWORD, token=token, json={"current_password": DEFAULT_PASSWORD,
                                                     "new_password": NEW_PASSWORD})

    [event] = audit_events(db_session, "user.password_changed")
    assert (event.actor_user_id, event.target_id) == (user.id, str(user.id))
    assert event.details == {"sessions_ended": 1}
    assert event.request_id == response.headers["X-Request-ID"]
    db_session.refresh(user)
    assert passwords.verify_password(NEW_PASSWORD, user.password_hash)


# --- delete ------------------------------------------------------------------


def test_delete_me_with_wrong_password_returns_401(api, db_session, user, login):
    token = login(user)

    response = api.delete(ME, token=token, json={"password": "not the password"})

    assert response.status == 401
    assert response.error_type == "AUTHENTICATION_ERROR"
    assert db_session.get(User, user.id) is not None
    assert api.get(AUTH_ME, token=token).status == 200


def test_delete_me_without_password_returns_422(api, db_session, user, login):
    response = api.delete(ME, token=login(user), json={})

    assert response.status == 422
    assert list(response.body["error"]["details"]) == ["password"]
    assert db_session.get(User, user.id) is not None


def test_delete_me_removes_user_and_sessions(api, db_session, user, login):
    user_id = user.id
    token = login(user)
    login(user)

    response = api.delete(ME, token=token, json={"password": DEFAULT_PASSWORD})

    assert response.status == 200
    db_session.expunge_all()
    assert db_session.get(User, user_id) is None
    assert db_session.scalar(select(func.count()).select_from(UserSession)
                             .where(UserSession.user_id == user_id)) == 0


def test_delete_me_keeps_audit_events_anonymised(api, db_session, user, login):
    token = login(user)
    api.patch(ME, token=token, json={"name": "Before Deletion"})

    api.delete(ME, token=token, json={"password": DEFAULT_PASSWORD})

    rows = db_session.scalars(select(AuditEvent)).all()
    assert {e.action for e in rows} == {"auth.login", "user.updated", "user.deleted"}
    assert all(e.actor_user_id is None for e in rows)


def test_delete_me_leaves_other_users_alone(api, db_session, user, login):
    other = UserFactory()
    other_token = login(other)

    api.delete(ME, token=login(user), json={"password": DEFAULT_PASSWORD})

    assert db_session.get(User, other.id) is not None
    assert api.get(AUTH_ME, token=other_token).status == 200
    assert [e.actor_user_id for e in audit_events(db_session, "auth.login")].count(other.id) == 1


def test_delete_me_token_no_longer_works(api, user, login):
    token = login(user)
    api.delete(ME, token=token, json={"password": DEFAULT_PASSWORD})

    response = api.get(AUTH_ME, token=token)

    assert response.status == 401
    assert response.error_type == "AUTHENTICATION_ERROR"


def test_deleted_email_can_register_again(api, user, login):
    email = user.email
    api.delete(ME, token=login(user), json={"password": DEFAULT_PASSWORD})

    response = api.post("/api/v1/auth/register", json={"email": email, "password": NEW_PASSWORD})

    assert response.status == 201
