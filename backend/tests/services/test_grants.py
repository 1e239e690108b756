"""services.grants: authorization codes as the code flow stores, finds and claims them (RFC 6749 §4.1.2:
a code is short-lived and single-use), on the statements built once with bound parameters."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from app.models import AuthorizationCode, User
from app.models.base import utcnow
from app.security.tokens import hash_token
from app.services import grants
from app.services.actor import Actor
from app.stores.denylist import MemoryDenylist
from tests import factories

LIFETIME = 60


def store(db_session, *, user: User | None = None, client=None, code: str = "the-code") -> tuple:
    user, client = user or factories.UserFactory(), client or factories.OAuthClientFactory()
    grants.store_authorization_code(db_session, code=code, client=client, user=user, redirect_uri=None,
                                    scope="openid", nonce="n-0", code_challenge=None, code_challenge_method=None,
                                    auth_time=utcnow(), amr=["pwd"], lifetime=LIFETIME)
    return user, client


def find(db_session, client, code: str = "the-code") -> AuthorizationCode | None:
    return grants.find_authorization_code(db_session, actor=Actor(user=None, ip="198.51.100.7"), code=code,
                                          client=client, denylist=MemoryDenylist())


def test_a_stored_code_is_kept_hashed_and_found_with_its_user(db_session):
    user, client = store(db_session)
    row = db_session.scalar(select(AuthorizationCode))
    assert row.code_hash == hash_token("the-code") and row.id is not None
    assert row.expires_at - row.created_at == timedelta(seconds=LIFETIME)
    assert row.created_at.tzinfo is not None and row.amr == ["pwd"]

    found = find(db_session, client)
    assert found is row and found.user is user
    assert find(db_session, client, code="another-code") is None
    assert find(db_session, factories.OAuthClientFactory()) is None  # another client's code


def test_a_code_may_be_stored_for_a_user_not_yet_flushed(db_session):
    """The insert runs at once, outside the unit of work: the session flushes what is pending first."""
    client = factories.OAuthClientFactory()  # a factory commits: made before the user is pending
    user = User(email="pending@example.com", name="Pending")
    db_session.add(user)
    store(db_session, user=user, client=client)
    assert find(db_session, client).user_id == user.id


def test_a_code_is_claimed_once(db_session):
    """The claim is the conditional UPDATE that lets exactly one of two concurrent redemptions win."""
    _, client = store(db_session)
    code = find(db_session, client)
    claim = dict(code=code, family_id=uuid.uuid4(), access_token_jti="jti", access_token_expires_at=utcnow())
    assert grants.claim_authorization_code(db_session, **claim) is True
    assert grants.claim_authorization_code(db_session, **claim) is False
    db_session.expire_all()
    assert db_session.get(AuthorizationCode, code.id).redeemed_at is not None


def test_a_nonce_counts_as_used_by_its_client_only(db_session):
    _, client = store(db_session)
    assert grants.nonce_used(db_session, client_id=client.client_id, nonce="n-0")
    assert not grants.nonce_used(db_session, client_id=client.client_id, nonce="n-1")
    assert not grants.nonce_used(db_session, client_id=factories.OAuthClientFactory().client_id, nonce="n-0")
