"""services.revocations: the database records every denial in the revoking transaction; the denylist
takes it when that transaction commits, restores it from the record, and asks the record while Redis
cannot answer (RFC 7009 §2: a revoked token stays revoked)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from redis import Redis
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.models import RevokedToken
from app.models.base import utcnow
from app.services import revocations
from app.services.access_tokens import verify_access_token
from app.stores.denylist import DenialsUnknown, MemoryDenylist, RedisDenylist
from app.stores.keysets import VerifiedTokens
from tests import factories
from tests.servers import free_port


def unreachable_redis() -> Redis:
    return Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1)


def record_of(db_session: Session) -> revocations.DatabaseDenials:
    return revocations.DatabaseDenials(lambda: db_session)


def rows(db_session: Session) -> dict[str, int]:
    db_session.rollback()
    return {row.key: int(row.expires_at.timestamp()) for row in db_session.scalars(select(RevokedToken))}


def test_deny_token_reaches_the_denylist_when_the_transaction_commits(db_session):
    denylist, lapses = MemoryDenylist(), int(time.time()) + 600

    revocations.deny_token(db_session, denylist=denylist, key="jti-1", expires_at=lapses)
    before_commit = denylist.is_denied("jti-1")
    db_session.commit()

    assert not before_commit and denylist.is_denied("jti-1")
    assert rows(db_session) == {"jti-1": lapses}


def test_deny_token_rolled_back_denies_nothing(db_session):
    """A revocation is done and audited, or nothing: its transaction failed, so no denial either."""
    denylist = MemoryDenylist()

    revocations.deny_token(db_session, denylist=denylist, key="jti-1", expires_at=int(time.time()) + 600)
    db_session.rollback()
    db_session.commit()

    assert not denylist.is_denied("jti-1") and rows(db_session) == {}


def test_deny_token_twice_keeps_the_later_lapse(db_session):
    now = int(time.time())
    for lapses in (now + 600, now + 60):
        revocations.deny_token(db_session, denylist=MemoryDenylist(), key="org:x", expires_at=lapses)
        db_session.commit()

    assert rows(db_session) == {"org:x": now + 600}


def test_deny_token_of_an_expired_token_records_nothing(db_session):
    revocations.deny_token(db_session, denylist=MemoryDenylist(), key="jti-old", expires_at=int(time.time()) - 1)
    db_session.commit()

    assert rows(db_session) == {}


def test_deny_token_with_redis_down_commits_and_is_denied_from_the_record(db_session):
    denying = RedisDenylist(unreachable_redis(), prefix=f"test-{uuid.uuid4().hex}", record=record_of(db_session))
    another = RedisDenylist(unreachable_redis(), prefix=f"test-{uuid.uuid4().hex}", record=record_of(db_session))

    revocations.deny_token(db_session, denylist=denying, key="jti-1", expires_at=int(time.time()) + 600)
    db_session.commit()

    assert denying.is_denied("jti-1") and another.is_denied("jti-1")
    assert not another.is_denied("jti-2")


def test_memory_denylist_restores_the_record_at_its_first_lookup(db_session):
    """A process without Redis that starts after a revocation still refuses the token."""
    db_session.add_all([RevokedToken(key="in-force", expires_at=utcnow() + timedelta(minutes=10)),
                        RevokedToken(key="lapsed", expires_at=utcnow() - timedelta(seconds=1))])
    db_session.commit()

    denylist = MemoryDenylist(record_of(db_session))

    assert denylist.is_denied("in-force") and not denylist.is_denied("lapsed")


def test_lookup_with_redis_and_database_down_is_unknown():
    unreachable_database = Session(create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"))
    denylist = RedisDenylist(unreachable_redis(), prefix="test", record=revocations.DatabaseDenials(
        lambda: unreachable_database))

    with pytest.raises(DenialsUnknown):
        denylist.is_denied("jti-1")


def test_access_token_whose_denial_is_unknown_is_refused(app, user):
    """Fail closed: introspection answers active: false (RFC 7662 §2.2), a resource server refuses it."""
    unreachable_database = Session(create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"))
    denylist = RedisDenylist(unreachable_redis(), prefix="test", record=revocations.DatabaseDenials(
        lambda: unreachable_database))
    token = factories.access_token(app, user=user)
    settings, keys = app.extensions["gatehouse.settings"], app.extensions["gatehouse.keys"]

    verified_tokens = VerifiedTokens()

    assert verify_access_token(token, settings=settings, keys=keys, verified_tokens=verified_tokens,
                               denied=MemoryDenylist()) is not None
    assert verify_access_token(token, settings=settings, keys=keys, verified_tokens=verified_tokens,
                               denied=denylist) is None
