"""/api/v1/users/me/identities: the identities at upstream providers linked to one's account."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, ExternalIdentity, IdentityProvider
from tests.factories import UserFactory, session_token

IDENTITIES = "/api/v1/users/me/identities"


@pytest.fixture
def corp(db_session) -> IdentityProvider:
    provider = IdentityProvider(kind="oidc", name="Corp", client_id="c", scopes=[], settings={"issuer": "https://corp"})
    db_session.add(provider)
    db_session.flush()
    return provider


def link(db_session, user, provider, subject: str = "s-1") -> ExternalIdentity:
    identity = ExternalIdentity(user_id=user.id, provider_id=provider.id, subject=subject, email=user.email)
    db_session.add(identity)
    db_session.flush()
    return identity


def identity_count(db_session) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(ExternalIdentity))


def test_list_identities_returns_only_ones_own(api, db_session, corp):
    user, other = UserFactory(), UserFactory()
    mine = link(db_session, user, corp)
    link(db_session, other, corp, subject="s-2")
    response = api.get(IDENTITIES, token=session_token(user))
    assert response.status == 200
    assert [(i["id"], i["provider_name"], i["provider_kind"], i["email"]) for i in response.data] == \
        [(str(mine.id), "Corp", "oidc", user.email)]
    assert {"created_at", "last_used_at", "provider_id"} <= set(response.data[0])


def test_unlink_identity_with_a_password_left_succeeds(api, db_session, corp):
    user = UserFactory()
    identity = link(db_session, user, corp)
    response = api.delete(f"{IDENTITIES}/{identity.id}", token=session_token(user))
    assert response.status == 200
    assert identity_count(db_session) == 0
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "federation.unlinked"))
    assert event.details == {"provider_id": str(corp.id)}


def test_unlink_one_of_two_identities_without_password_succeeds(api, db_session, corp):
    user = UserFactory(password_hash=None)
    first = link(db_session, user, corp)
    link(db_session, user, corp, subject="s-2")
    assert api.delete(f"{IDENTITIES}/{first.id}", token=session_token(user)).status == 200
    assert identity_count(db_session) == 1


def test_unlink_the_last_sign_in_method_returns_409(api, db_session, corp):
    user = UserFactory(password_hash=None)
    identity = link(db_session, user, corp)
    response = api.delete(f"{IDENTITIES}/{identity.id}", token=session_token(user))
    assert response.status == 409 and response.error_type == "CONFLICT"
    assert identity_count(db_session) == 1


def test_unlink_someone_elses_identity_returns_404(api, db_session, corp):
    user, other = UserFactory(), UserFactory()
    theirs = link(db_session, other, corp)
    response = api.delete(f"{IDENTITIES}/{theirs.id}", token=session_token(user))
    assert response.status == 404
    assert identity_count(db_session) == 1
