"""Organization endpoints called with a Gatehouse access token (scope org:admin) instead of a session.

The token only authenticates: what the caller may do is decided by their membership as
it is at each call, and only in the organization the token was issued for.
"""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from app.models import AuditEvent, UserStatus
from tests import factories
from tests.factories import DEFAULT_CLIENT_SECRET

BASE = "/api/v1/organizations"


@pytest.fixture
def other_org(db_session, owner):
    return factories.create_organization(db_session, owner=owner, slug="globex")


def set_role(db_session, org, user, role):
    factories.demote_meanwhile(db_session, org, user, role)
    db_session.commit()


def assert_401(response):
    assert response.status == 401 and response.error_type == "AUTHENTICATION_ERROR"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_acts_with_the_members_current_permissions(app, api, db_session, org, admin):
    token = factories.access_token(app, user=admin, organization=org)

    assert api.patch(f"{BASE}/{org.id}", json={"name": "Acme Ltd"}, token=token).status == 200

    set_role(db_session, org, admin, "member")
    refused = api.patch(f"{BASE}/{org.id}", json={"name": "Acme Again"}, token=token)
    assert refused.status == 403 and refused.error_type == "PERMISSION_DENIED"
    assert api.get(f"{BASE}/{org.id}", token=token).status == 200


def test_changes_made_with_a_token_are_audited_as_its_user(app, api, db_session, org, admin):
    newcomer = factories.UserFactory()
    token = factories.access_token(app, user=admin, organization=org)

    response = api.post(f"{BASE}/{org.id}/members", json={"email": newcomer.email, "role": "member"}, token=token)

    assert response.status == 201
    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "membership.added")).all()
    assert (event.actor_user_id, event.organization_id) == (admin.id, org.id)


def test_token_for_one_organization_is_403_in_another_the_user_belongs_to(app, api, db_session, owner, org,
                                                                         other_org):
    token = factories.access_token(app, user=owner, organization=org)
    response = api.get(f"{BASE}/{other_org.id}", token=token)
    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"


def test_token_without_org_id_is_403(app, api, owner, org):
    response = api.get(f"{BASE}/{org.id}", token=factories.access_token(app, user=owner))
    assert response.status == 403


def test_token_is_404_where_the_user_is_not_a_member(app, api, db_session, org, admin, other_org):
    token = factories.access_token(app, user=admin, organization=org)
    response = api.get(f"{BASE}/{other_org.id}", token=token)
    assert response.status == 404 and response.error_type == "NOT_FOUND"


def test_platform_admin_with_a_token_has_only_their_membership_permissions(app, api, db_session, org, other_org):
    platform_admin = factories.UserFactory(is_platform_admin=True)
    factories.add_member(db_session, org, platform_admin, "member")
    token = factories.access_token(app, user=platform_admin, organization=org)

    assert api.get(f"{BASE}/{org.id}", token=token).status == 200
    assert api.patch(f"{BASE}/{org.id}", json={"name": "Mine"}, token=token).status == 403
    assert api.get(f"{BASE}/{other_org.id}", token=token).status == 404
    # The same user with a session acts as a platform administrator.
    assert api.patch(f"{BASE}/{org.id}", json={"name": "Mine"},
                     token=factories.session_token(platform_admin)).status == 200


def test_token_without_the_org_admin_scope_is_401(app, api, owner, org):
    token = factories.access_token(app, user=owner, organization=org, scope="openid profile")
    assert_401(api.get(f"{BASE}/{org.id}", token=token))


def test_expired_token_is_401(app, api, owner, org):
    assert_401(api.get(f"{BASE}/{org.id}", token=factories.access_token(app, user=owner, organization=org,
                                                                          expires_in=-5)))


def test_revoked_token_is_401(app, api, owner, org):
    token = factories.access_token(app, user=owner, organization=org, jti="revoked-jti")
    assert api.get(f"{BASE}/{org.id}", token=token).status == 200

    app.extensions["gatehouse.stores"].denylist.deny("revoked-jti", int(time.time()) + 300)

    assert_401(api.get(f"{BASE}/{org.id}", token=token))


def test_token_signed_with_another_key_is_401(app, api, owner, org):
    settings = app.extensions["gatehouse.settings"]
    now = int(time.time())
    forged = jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": "attacker"},
                        {"iss": settings.ISSUER, "sub": str(owner.id), "aud": "x", "client_id": "x",
                         "scope": "org:admin", "iat": now, "exp": now + 300, "jti": "forged",
                         "org_id": str(org.id)}, RSAKey.generate_key(2048))
    assert_401(api.get(f"{BASE}/{org.id}", token=forged))


def test_token_of_a_suspended_user_is_401(app, api, db_session, owner, org):
    token = factories.access_token(app, user=owner, organization=org)
    owner.status = UserStatus.SUSPENDED
    db_session.commit()
    assert_401(api.get(f"{BASE}/{org.id}", token=token))


def test_tokens_of_a_deleted_organization_stop_working(app, api, client, db_session, owner, org, admin):
    rp = factories.OAuthClientFactory()
    token = factories.access_token(app, user=admin, organization=org, client_id=rp.client_id)

    def introspect() -> dict:
        # As the client the token was issued to (RFC 7662 §2.1).
        auth = (rp.client_id, DEFAULT_CLIENT_SECRET)
        db_session.commit()  # the request must not wait for the test's transaction (SQLite)
        response = client.post("/oauth2/introspect", data={"token": token}, auth=auth)
        assert response.status_code == 200
        return response.get_json()

    assert introspect()["active"] is True
    org_url = f"{BASE}/{org.id}"

    assert api.delete(org_url, token=factories.session_token(owner)).status == 200

    assert_401(api.get(org_url, token=token))
    assert introspect() == {"active": False}


def test_session_only_endpoints_refuse_access_tokens(app, api, owner, org):
    token = factories.access_token(app, user=owner, organization=org)
    assert_401(api.get("/api/v1/users/me/organizations", token=token))
