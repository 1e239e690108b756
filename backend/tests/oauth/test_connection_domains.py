"""An organization's connection may assert only emails in the organization's verified domains (its IdP's
administrators can create people with any address): anything else is refused and audited, through SAML
(real signed responses posted to the ACS) and OIDC (a real OpenID provider stand-in on loopback)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import ExternalIdentity, User, UserSession
from tests import factories
from tests.oauth.helpers import audit_events, parse_page
from tests.oauth.test_federated_sign_in import Upstream
from tests.oauth.test_saml_sign_in import SAMLRoundTrip, idp, make_connection  # noqa: F401 (fixtures)

REFUSAL = "This identity provider may not sign in people with this email address here."


@pytest.fixture
def acme(db_session, owner):
    return factories.create_organization(db_session, owner=owner, slug="acme")


@pytest.fixture
def saml_trip(make_connection, browser, settings, idp, acme) -> SAMLRoundTrip:  # noqa: F811
    return SAMLRoundTrip(browser, make_connection(organization_id=acme.id), idp, settings.ISSUER)


def count(db_session, model) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(model))


def assert_refused_and_audited(response, db_session) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert REFUSAL in parse_page(response).text
    assert count(db_session, User) == 1  # the organization's owner only
    assert count(db_session, UserSession) == count(db_session, ExternalIdentity) == 0
    assert audit_events(db_session, "federation.failed")[-1].details == {"reason": "email_domain_not_verified"}


def test_an_email_in_a_verified_domain_signs_in(saml_trip, acme, db_session):
    factories.verified_domain(db_session, acme, "corp.example")
    assert saml_trip.answer(saml_trip.start()).status_code == 200


def test_an_email_outside_the_organizations_domains_is_refused(saml_trip, acme, db_session):
    factories.verified_domain(db_session, acme, "acme.example")
    assert_refused_and_audited(saml_trip.answer(saml_trip.start()), db_session)


def test_a_claimed_but_unverified_domain_is_not_enough(saml_trip, acme, db_session):
    domain = factories.verified_domain(db_session, acme, "corp.example")
    domain.verified_at = None
    db_session.commit()
    assert_refused_and_audited(saml_trip.answer(saml_trip.start()), db_session)


def test_a_domain_another_organization_verified_is_refused(saml_trip, db_session):
    globex = factories.create_organization(db_session, owner=factories.UserFactory(), slug="globex")
    factories.verified_domain(db_session, globex, "corp.example")
    response = saml_trip.answer(saml_trip.start())
    assert response.status_code == 400 and REFUSAL in parse_page(response).text
    assert audit_events(db_session, "federation.failed")[-1].details == {"reason": "email_domain_not_verified"}


def test_a_known_subject_asserting_another_address_later_is_refused(saml_trip, acme, db_session):
    factories.verified_domain(db_session, acme, "corp.example")
    assert saml_trip.answer(saml_trip.start()).status_code == 200
    response = saml_trip.answer(saml_trip.start(), attributes={"email": ["pat@elsewhere.example"]})
    assert response.status_code == 400 and REFUSAL in parse_page(response).text


def test_an_organizations_oidc_connection_is_held_to_the_same_rule(browser, make_provider, upstream, acme,  # noqa: F811
                                                                    db_session):
    via = Upstream(browser, make_provider(organization_id=acme.id), upstream)
    assert_refused_and_audited(via.sign_in(email="pat@corp.example"), db_session)
    factories.verified_domain(db_session, acme, "corp.example")
    assert via.sign_in(email="pat@corp.example").status_code == 200


def test_a_platform_provider_may_assert_any_address(browser, make_provider, upstream, db_session):  # noqa: F811
    via = Upstream(browser, make_provider(), upstream)
    assert via.sign_in(email="pat@corp.example").status_code == 200
