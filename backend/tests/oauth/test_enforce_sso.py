"""enforce_sso: people whose email is in a verified domain that enforces single sign-on sign in only
through their organization's connections — no password (the page and the API), no platform provider, no
registration (the page and the API) — except platform administrators (break-glass). One service function
decides (services.domains.sign_in_refusal); here each path that asks it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import IdentityProvider, User, UserSession
from tests import factories
from tests.oauth.helpers import audit_events, parse_page
from tests.oauth.test_federated_sign_in import Upstream

SSO_MESSAGE = "Your organization requires single sign-on (SSO) for this email address"


@pytest.fixture
def acme(db_session, owner):
    organization = factories.create_organization(db_session, owner=owner, slug="acme-sso")
    connection = IdentityProvider(kind="oidc", organization_id=organization.id, name="Acme SSO", client_id="acme",
                                  scopes=["openid"], settings={"issuer": "https://sso.acme.test"})
    db_session.add(connection)
    db_session.commit()
    return factories.verified_domain(db_session, organization, "acme.test", connection, enforce_sso=True)


@pytest.fixture
def ada(db_session, acme):
    return factories.UserFactory(email="ada@acme.test")


def sessions(db_session) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(UserSession))


@pytest.mark.parametrize("password", [factories.DEFAULT_PASSWORD, "not the password"])
def test_api_login_is_refused_naming_sso_whatever_the_password(api, ada, db_session, password):
    response = api.post("/api/v1/auth/login", json={"email": "Ada@acme.test", "password": password})
    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"
    assert response.body["message"].startswith(SSO_MESSAGE)
    assert sessions(db_session) == 0
    [event] = audit_events(db_session, "auth.login")
    assert event.result == "failure" and event.details == {"method": "password", "reason": "sso_required"}


def test_api_login_of_an_unknown_address_in_the_domain_is_refused_the_same(api, acme):
    response = api.post("/api/v1/auth/login", json={"email": "nobody@acme.test", "password": "whatever it is"})
    assert response.status == 403 and response.body["message"].startswith(SSO_MESSAGE)


def test_a_platform_administrator_in_the_domain_signs_in_with_a_password(api, acme, db_session):
    factories.UserFactory(email="ops@acme.test", is_platform_admin=True)
    response = api.post("/api/v1/auth/login", json={"email": "ops@acme.test", "password": factories.DEFAULT_PASSWORD})
    assert response.status == 200, response.body


def test_a_domain_that_does_not_enforce_leaves_passwords_alone(api, acme, ada, db_session):
    acme.enforce_sso = False
    db_session.commit()
    response = api.post("/api/v1/auth/login", json={"email": ada.email, "password": factories.DEFAULT_PASSWORD})
    assert response.status == 200


def test_the_sign_in_page_refuses_the_password_naming_sso(browser, ada, db_session):
    response = browser.submit_login(browser.login_page(), ada.email)
    assert response.status_code == 403
    assert SSO_MESSAGE in parse_page(response).text
    assert sessions(db_session) == 0


def test_api_registration_in_the_domain_is_refused(api, acme, db_session):
    response = api.post("/api/v1/auth/register", json={"email": "new@acme.test", "password": "a long new password 1",
                                                      "name": "New"})
    assert response.status == 403 and response.body["message"].startswith(SSO_MESSAGE)
    assert db_session.scalar(select(User).where(User.email == "new@acme.test")) is None


def test_the_sign_up_page_refuses_an_address_in_the_domain(browser, acme, db_session):
    page = browser.http.get("/signup")
    form = parse_page(page).form
    response = browser.http.post(form.action, data={**form.fields, "email": "new@acme.test", "name": "New",
                                                    "password": "a long new password 1"})
    assert response.status_code == 403
    assert SSO_MESSAGE in parse_page(response).text
    assert db_session.scalar(select(User).where(User.email == "new@acme.test")) is None


def test_a_platform_provider_cannot_sign_in_someone_of_the_domain(browser, make_provider, upstream, ada,  # noqa: F811
                                                                   db_session):
    via = Upstream(browser, make_provider(trust_email=True), upstream)
    ada.email_verified = True
    db_session.commit()
    response = via.sign_in(email="ada@acme.test")
    assert response.status_code == 400
    assert SSO_MESSAGE in parse_page(response).text
    assert sessions(db_session) == 0
    assert audit_events(db_session, "federation.failed")[0].details == {"reason": "sso_required"}


def test_a_platform_provider_cannot_create_an_account_in_the_domain(browser, make_provider,  # noqa: F811
                                                                     upstream, acme, db_session):  # noqa: F811
    via = Upstream(browser, make_provider(), upstream)
    response = via.sign_in(email="new@acme.test")
    assert response.status_code == 400 and SSO_MESSAGE in parse_page(response).text
    assert db_session.scalar(select(User).where(User.email == "new@acme.test")) is None


# --- personal API keys: a credential of their own, so a way around the IdP ----------------------------


def test_creating_an_api_key_is_refused_naming_sso(api, ada, db_session):
    token = factories.session_token(ada)  # a session from the organization's connection, say
    db_session.commit()
    response = api.post("/api/v1/users/me/api-keys", token=token,
                        json={"name": "ci", "scopes": ["profile:read"], "password": factories.DEFAULT_PASSWORD})
    assert response.status == 403 and response.body["message"].startswith(SSO_MESSAGE)
    assert audit_events(db_session, "api_key.created") == []


def test_a_key_made_before_the_domain_enforced_sso_is_refused_and_the_refusal_recorded(api, ada, acme, db_session):
    row, key = factories.api_key(db_session, ada)
    acme.enforce_sso = False
    db_session.commit()
    assert api.get("/api/v1/users/me", headers={"X-API-Key": key}).status == 200
    acme.enforce_sso = True
    db_session.commit()

    response = api.get("/api/v1/users/me", headers={"X-API-Key": key})

    assert response.status == 401 and response.body["message"].startswith(SSO_MESSAGE)
    refused = [e for e in audit_events(db_session, "auth.login") if e.result == "failure"]
    assert [e.details for e in refused] == [{"method": "api_key", "api_key_id": str(row.id), "reason": "sso_required"}]


def test_a_platform_administrators_key_in_the_domain_still_works(api, acme, db_session):
    _, key = factories.api_key(db_session, factories.UserFactory(email="ops@acme.test", is_platform_admin=True))
    db_session.commit()
    assert api.get("/api/v1/users/me", headers={"X-API-Key": key}).status == 200
