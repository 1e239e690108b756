"""services.users: registration, profile, password change and account deletion."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import errors
from app.models import AuditEvent, SessionEndReason, User, UserSession
from app.security import passwords
from app.services import sessions, users
from app.services.actor import Actor
from app.stores.denylist import MemoryDenylist
from tests.factories import DEFAULT_PASSWORD, UserFactory

NEW_PASSWORD = "a different long passphrase"


@pytest.fixture
def current(db_session, user, settings) -> sessions.IssuedSession:
    return sessions.start_session(db_session, user=user, settings=settings)


@pytest.fixture
def actor(user, current) -> Actor:
    return Actor(user=user, ip="192.0.2.1", user_agent="pytest", request_id="req-00000001",
                 session_id=current.session.id)


def events(db_session, action: str) -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_create_user_stores_normalised_email(db_session, settings):
    user = users.create_user(db_session, email="  Alice@Example.COM ", password=DEFAULT_PASSWORD,
                             bcrypt_rounds=settings.BCRYPT_ROUNDS)

    assert user.email == "alice@example.com"
    assert users.get_user_by_email(db_session, "ALICE@example.com") is user


def test_create_user_hashes_password_with_configured_cost(db_session, settings):
    user = users.create_user(db_session, email="alice@example.com", password=DEFAULT_PASSWORD,
                             bcrypt_rounds=settings.BCRYPT_ROUNDS)

    assert user.password_hash.startswith(f"$2b${settings.BCRYPT_ROUNDS:02d}$")
    assert passwords.verify_password(DEFAULT_PASSWORD, user.password_hash)


def test_create_user_without_password_makes_federated_account(db_session, settings):
    user = users.create_user(db_session, email="alice@example.com", password=None,
                             bcrypt_rounds=settings.BCRYPT_ROUNDS)

    assert user.password_hash is None


@pytest.mark.parametrize("email", ["taken@example.com", "Taken@Example.com", " TAKEN@EXAMPLE.COM"])
def test_create_user_with_taken_email_raises_conflict(db_session, settings, email):
    UserFactory(email="taken@example.com")

    with pytest.raises(errors.Conflict) as raised:
        users.create_user(db_session, email=email, password=DEFAULT_PASSWORD,
                          bcrypt_rounds=settings.BCRYPT_ROUNDS)

    assert list(raised.value.details) == ["email"]


@pytest.mark.parametrize("password", ["short", "password123", "PASSWORD123", "é" * 40],
                         ids=["short", "common", "common-any-case", "over-72-bytes"])
def test_create_user_with_weak_password_raises_validation_failed(db_session, settings, password):
    with pytest.raises(errors.ValidationFailed) as raised:
        users.create_user(db_session, email="alice@example.com", password=password,
                          bcrypt_rounds=settings.BCRYPT_ROUNDS)

    assert list(raised.value.details) == ["password"]
    assert db_session.scalar(select(User)) is None


def test_create_user_accepts_72_byte_password(db_session, settings):
    password = "é" * 36

    user = users.create_user(db_session, email="alice@example.com", password=password,
                             bcrypt_rounds=settings.BCRYPT_ROUNDS)

    assert passwords.verify_password(password, user.password_hash)


def test_register_user_records_audit_event(db_session, settings):
    actor = Actor(user=None, ip="192.0.2.1", request_id="req-00000001")

    user = users.register_user(db_session, actor=actor, email="alice@example.com", password=DEFAULT_PASSWORD,
                               name="Alice", bcrypt_rounds=settings.BCRYPT_ROUNDS)

    [event] = events(db_session, "auth.register")
    assert (event.actor_user_id, event.target_id, event.ip) == (user.id, str(user.id), "192.0.2.1")


def test_update_profile_changes_name_and_records_event(db_session, user, actor):
    users.update_profile(db_session, actor=actor, user=user, name="New Name")

    assert user.name == "New Name"
    [event] = events(db_session, "user.updated")
    assert event.details == {"fields": ["name"]}


@pytest.mark.parametrize("name", [None, "same"], ids=["not-given", "unchanged"])
def test_update_profile_without_change_records_nothing(db_session, actor, name):
    user = UserFactory(name="same")

    users.update_profile(db_session, actor=actor, user=user, name=name)

    assert user.name == "same"
    assert events(db_session, "user.updated") == []


def test_change_password_keeps_current_session_and_ends_others(db_session, user, actor, current, settings):
    other = sessions.start_session(db_session, user=user, settings=settings)
    stranger = sessions.start_session(db_session, user=UserFactory(), settings=settings)

    ended = users.change_password(db_session, actor=actor, user=user, current_password=DEFAULT_PASSWORD,
                                  new_password=NEW_PASSWORD, settings=settings)

    assert ended == 1
    db_session.expire_all()
    assert current.session.ended_at is None
    assert other.session.end_reason == SessionEndReason.PASSWORD_CHANGED
    assert stranger.session.ended_at is None
    assert sessions.authenticate_token(db_session, token=current.token, settings=settings).id == current.session.id


def test_change_password_sets_new_hash_and_records_event(db_session, user, actor, settings):
    users.change_password(db_session, actor=actor, user=user, current_password=DEFAULT_PASSWORD,
                          new_password=NEW_PASSWORD, settings=settings)

    assert passwords.verify_password(NEW_PASSWORD, user.password_hash)
    assert not passwords.verify_password(DEFAULT_PASSWORD, user.password_hash)
    [event] = events(db_session, "user.password_changed")
    assert event.details == {"sessions_ended": 0}


def test_change_password_with_wrong_current_password_raises(db_session, user, actor, settings):
    old_hash = user.password_hash

    with pytest.raises(errors.InvalidCredentials):
        users.change_password(db_session, actor=actor, user=user, current_password="not the password",
                              new_password=NEW_PASSWORD, settings=settings)

    assert user.password_hash == old_hash


def test_change_password_with_weak_new_password_reports_new_password_field(db_session, user, actor, settings):
    with pytest.raises(errors.ValidationFailed) as raised:
        users.change_password(db_session, actor=actor, user=user, current_password=DEFAULT_PASSWORD,
                              new_password="password123", settings=settings)

    assert list(raised.value.details) == ["new_password"]


def test_delete_account_removes_user_and_sessions(db_session, user, actor, settings):
    user_id = user.id

    users.delete_account(db_session, actor=actor, user=user, password=DEFAULT_PASSWORD, settings=settings,
                         denylist=MemoryDenylist())
    db_session.commit()

    assert db_session.get(User, user_id) is None
    assert db_session.scalars(select(UserSession).where(UserSession.user_id == user_id)).all() == []


def test_delete_account_keeps_audit_events_anonymised(db_session, user, actor, settings):
    users.update_profile(db_session, actor=actor, user=user, name="Before Deletion")

    users.delete_account(db_session, actor=actor, user=user, password=DEFAULT_PASSWORD, settings=settings,
                         denylist=MemoryDenylist())
    db_session.commit()

    rows = db_session.scalars(select(AuditEvent)).all()
    assert {e.action for e in rows} == {"user.updated", "user.deleted"}
    assert all(e.actor_user_id is None and e.target_id is None for e in rows)


def test_delete_account_with_wrong_password_raises(db_session, user, actor, settings):
    with pytest.raises(errors.InvalidCredentials):
        users.delete_account(db_session, actor=actor, user=user, password="not the password", settings=settings,
                             denylist=MemoryDenylist())

    db_session.commit()
    assert db_session.get(User, user.id) is not None
