"""services.api_keys: creating (password first), authenticating (prefix, constant-time hash compare,
revoked, expired, inactive user), recording the last use at most once a minute, scopes, revoking."""

from __future__ import annotations

import hmac
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import errors
from app.models import ApiKey, AuditEvent, UserStatus
from app.models.base import utcnow
from app.security.tokens import hash_token
from app.services import api_keys
from app.services.actor import Actor
from tests import factories
from tests.factories import DEFAULT_PASSWORD, UserFactory


@pytest.fixture
def actor(user):
    return Actor(user=user, ip="198.51.100.7")


def create(db_session, actor, settings, **overrides):
    values = dict(password=DEFAULT_PASSWORD, name="deploys", scopes=["profile:read"], expires_at=None)
    values.update(overrides)
    return api_keys.create_key(db_session, actor=actor, user=actor.user, settings=settings, **values)


def authenticate(db_session, key, now=None, ip="203.0.113.9"):
    return api_keys.authenticate_key(db_session, actor=Actor(user=None, ip=ip), presented=key, now=now)


def test_create_key_stores_prefix_and_sha256_of_the_key(db_session, actor, settings):
    issued = create(db_session, actor, settings, scopes=["organizations:read", "profile:read", "profile:read"])

    row = db_session.scalars(select(ApiKey)).one()
    assert issued.key.startswith(f"ghk_{row.prefix}_")
    assert row.key_hash == hash_token(issued.key)
    assert row.scopes == ["organizations:read", "profile:read"]


def test_create_key_with_a_wrong_password_raises_invalid_credentials(db_session, actor, settings):
    with pytest.raises(errors.InvalidCredentials):
        create(db_session, actor, settings, password="wrong")

    assert db_session.scalars(select(ApiKey)).all() == []


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(days=-1), timedelta(days=3651)],
                         ids=["now", "past", "beyond-ten-years"])
def test_create_key_with_an_expiry_out_of_range_raises_validation_failed(db_session, actor, settings, offset):
    now = utcnow()

    with pytest.raises(errors.ValidationFailed) as raised:
        create(db_session, actor, settings, expires_at=now + offset, now=now)

    assert set(raised.value.details) == {"expires_at"}


def test_authenticate_key_returns_the_key_of_its_user(db_session, user):
    row, key = factories.api_key(db_session, user)

    assert authenticate(db_session, key) is row and row.user is user


def test_authenticate_key_compares_the_hash_in_constant_time(db_session, user, monkeypatch):
    """The row is found by the public prefix; the secret is proved by hmac.compare_digest on the hash."""
    row, key = factories.api_key(db_session, user)
    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)
    monkeypatch.setattr(hmac, "compare_digest", spy)

    authenticate(db_session, key)
    with pytest.raises(errors.AuthenticationRequired):
        authenticate(db_session, f"ghk_{row.prefix}_" + "A" * 43)

    assert compared == [(hash_token(key), row.key_hash), (hash_token(f"ghk_{row.prefix}_" + "A" * 43), row.key_hash)]


def test_authenticate_key_refuses_a_revoked_key(db_session, user):
    row, key = factories.api_key(db_session, user)
    api_keys.revoke_key(db_session, actor=Actor(user=user), user=user, key_id=row.id)

    with pytest.raises(errors.AuthenticationRequired, match="revoked"):
        authenticate(db_session, key)


def test_authenticate_key_refuses_an_expired_key_and_audits_the_attempt(db_session, user):
    now = utcnow()
    row, key = factories.api_key(db_session, user, expires_at=now + timedelta(hours=1))
    authenticate(db_session, key, now=now)

    with pytest.raises(errors.AuthenticationRequired, match="expired"):
        authenticate(db_session, key, now=now + timedelta(hours=1))

    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "api_key.used_after_expiry")).all()
    assert (event.result, event.actor_user_id, event.target_id, event.ip) == ("failure", user.id, str(row.id),
                                                                                "203.0.113.9")


def test_authenticate_key_refuses_a_suspended_users_key(db_session, user):
    _, key = factories.api_key(db_session, user)
    user.status = UserStatus.SUSPENDED

    with pytest.raises(errors.AuthenticationRequired, match="not active"):
        authenticate(db_session, key)


def test_authenticate_key_records_the_last_use_at_most_once_a_minute(db_session, user):
    row, key = factories.api_key(db_session, user)
    first = utcnow()

    authenticate(db_session, key, now=first, ip="203.0.113.1")
    authenticate(db_session, key, now=first + timedelta(seconds=59), ip="203.0.113.2")
    assert (row.last_used_at, row.last_used_ip) == (first, "203.0.113.1")

    authenticate(db_session, key, now=first + timedelta(seconds=60), ip="203.0.113.3")
    assert (row.last_used_at, row.last_used_ip) == (first + timedelta(seconds=60), "203.0.113.3")


def test_require_scope_names_the_missing_scope(db_session, user):
    row, _ = factories.api_key(db_session, user, ["profile:read"])

    api_keys.require_scope(row, "profile:read")
    with pytest.raises(errors.PermissionDenied, match="organizations:write") as raised:
        api_keys.require_scope(row, "organizations:write")
    assert raised.value.details == {"required_scope": "organizations:write"}
    with pytest.raises(errors.PermissionDenied):
        api_keys.require_scope(row, None)


def test_revoke_all_for_user_revokes_only_that_users_live_keys_and_audits_once(db_session, user):
    first, first_key = factories.api_key(db_session, user)
    second, _ = factories.api_key(db_session, user)
    other, other_key = factories.api_key(db_session, UserFactory())
    operator = Actor(user=UserFactory(is_platform_admin=True), ip="192.0.2.1")

    revoked = api_keys.revoke_all_for_user(db_session, actor=operator, user_id=user.id)
    db_session.commit()

    assert revoked == 2
    db_session.expire_all()
    assert first.revoked_at is not None and second.revoked_at is not None and other.revoked_at is None
    with pytest.raises(errors.AuthenticationRequired, match="revoked"):
        authenticate(db_session, first_key)
    assert authenticate(db_session, other_key) is other
    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "api_key.revoked_all")).all()
    assert (event.actor_user_id, event.target_id, event.details) == (operator.user.id, str(user.id),
                                                                     {"keys_revoked": 2})


def test_revoke_all_for_user_without_keys_records_nothing(db_session, user):
    assert api_keys.revoke_all_for_user(db_session, actor=Actor(user=None), user_id=user.id) == 0

    assert db_session.scalars(select(AuditEvent)).all() == []


def test_list_keys_leaves_out_revoked_keys(db_session, user):
    kept, _ = factories.api_key(db_session, user)
    gone, _ = factories.api_key(db_session, user)
    api_keys.revoke_key(db_session, actor=Actor(user=user), user=user, key_id=gone.id)

    assert api_keys.list_keys(db_session, user=user) == [kept]
