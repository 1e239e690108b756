"""The SAML assertion replay cache (SAML Profiles §4.1.4.5): one interface, two stores — Redis (SET NX lapsing at
the assertion's expiry) and the database's saml_assertion_uses table — each tested here on the real thing, and
the app choosing Redis exactly when REDIS_URL is set."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import func, select

from app import errors
from app.models import IdentityProvider, SAMLAssertionUse
from app.services.saml_replay import accept_assertion_once
from app.stores.saml_replay import DatabaseAssertionReplayCache, RedisAssertionReplayCache
from tests.conftest import SHARED_REDIS_URL


@pytest.fixture
def now() -> datetime:
    """Redis lapses keys on its own clock, so the assertions' times are around the real present: read when
    the test runs, not when the module was collected (a long run would make now + 5 minutes the past)."""
    return datetime.now(UTC)


@pytest.fixture(params=["database", "redis"])
def cache(request, db_session, saml_provider_id):
    if request.param == "database":
        return DatabaseAssertionReplayCache(lambda: db_session)
    return RedisAssertionReplayCache(Redis.from_url(SHARED_REDIS_URL), f"test-saml-{uuid.uuid4().hex}")


@pytest.fixture
def saml_provider_id(db_session) -> uuid.UUID:
    provider = IdentityProvider(kind="saml", name="Corp", scopes=[], settings={})
    db_session.add(provider)
    db_session.commit()
    return provider.id


def test_an_assertion_is_accepted_once(cache, saml_provider_id, now):
    expires = now + timedelta(minutes=5)
    accept_assertion_once(cache, provider_id=saml_provider_id, assertion_id="_a1", expires_at=expires, now=now)
    with pytest.raises(errors.FederationFailed) as refused:
        accept_assertion_once(cache, provider_id=saml_provider_id, assertion_id="_a1", expires_at=expires, now=now)
    assert refused.value.reason == "saml_replayed"


def test_another_assertion_is_not_a_replay(cache, saml_provider_id, now):
    expires = now + timedelta(minutes=5)
    assert cache.accept_once(provider_id=saml_provider_id, assertion_id="_a1", expires_at=expires, now=now)
    assert cache.accept_once(provider_id=saml_provider_id, assertion_id="_a2", expires_at=expires, now=now)


def test_redis_keeps_the_assertion_until_it_expires(now):
    redis, prefix = Redis.from_url(SHARED_REDIS_URL), f"test-saml-{uuid.uuid4().hex}"
    cache, provider_id = RedisAssertionReplayCache(redis, prefix), uuid.uuid4()
    assert cache.accept_once(provider_id=provider_id, assertion_id="_a1", expires_at=now + timedelta(minutes=7),
                             now=now)
    key = f"{prefix}:saml-assertion:{provider_id}:_a1"
    assert redis.expiretime(key) == int((now + timedelta(minutes=7)).timestamp())


def test_redis_unreachable_refuses_rather_than_risk_a_replay(now):
    cache = RedisAssertionReplayCache(Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.5), "x")
    with pytest.raises(errors.FederationFailed) as refused:
        cache.accept_once(provider_id=uuid.uuid4(), assertion_id="_a1", expires_at=now, now=now)
    assert refused.value.reason == "saml_replay_cache_unavailable"


def test_the_database_forgets_expired_assertions(db_session, saml_provider_id, now):
    cache = DatabaseAssertionReplayCache(lambda: db_session)
    cache.accept_once(provider_id=saml_provider_id, assertion_id="_old", expires_at=now, now=now - timedelta(1))
    cache.accept_once(provider_id=saml_provider_id, assertion_id="_new", expires_at=now + timedelta(1), now=now)
    assert db_session.scalars(select(SAMLAssertionUse.assertion_id)).all() == ["_new"]
    assert db_session.scalar(select(func.count()).select_from(SAMLAssertionUse)) == 1


def test_the_app_shares_replays_through_redis_when_configured(app, settings):
    cache = app.extensions["gatehouse.stores"].saml_replay_cache
    expected = RedisAssertionReplayCache if settings.REDIS_URL else DatabaseAssertionReplayCache
    assert type(cache) is expected
