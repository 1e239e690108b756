"""services.saml_logout: which sessions an IdP's LogoutRequest ends (SAML Profiles §4.4.4.1), and which sessions
our logout tells their IdP about."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditEvent, IdentityProvider, SessionEndReason, SessionKind, UserSession
from app.services import saml_logout
from app.services.actor import Actor
from tests import factories


def connection(db_session, **settings) -> IdentityProvider:
    provider = IdentityProvider(kind="saml", name="Corp", scopes=[], settings={
        "idp_entity_id": "https://idp.test", "idp_sso_url": "https://idp.test/sso", "idp_certificates": [],
        "sp_certificate": ""} | settings)
    db_session.add(provider)
    db_session.flush()
    return provider


def saml_session(provider: IdentityProvider, name_id: str, session_index: str | None = None) -> UserSession:
    session = factories.UserSessionFactory(kind=SessionKind.BROWSER, identity_provider_id=provider.id)
    saml_logout.remember_saml_subject(session, name_id=name_id, name_id_format=None, session_index=session_index)
    return session


@pytest.fixture
def corp(db_session) -> IdentityProvider:
    return connection(db_session, idp_slo_url="https://idp.test/slo")


def test_ends_only_the_named_persons_sessions_from_that_connection(db_session, corp):
    other_connection = connection(db_session)
    pats = [saml_session(corp, "pat"), saml_session(corp, "pat", "_s2")]
    sams = saml_session(corp, "sam")
    same_name_elsewhere = saml_session(other_connection, "pat")
    password_session = factories.UserSessionFactory(kind=SessionKind.BROWSER)
    db_session.flush()

    ended = saml_logout.end_idp_sessions(db_session, actor=Actor(user=None), provider=corp, name_id="pat",
                                         session_indexes=[])

    assert ended == 2
    db_session.expire_all()
    assert all(s.end_reason == SessionEndReason.IDP_LOGOUT for s in pats)
    assert all(s.ended_at is None for s in (sams, same_name_elsewhere, password_session))
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "saml.logout"))
    assert event.details == {"sessions_ended": 2} and event.target_id == str(corp.id)


def test_with_session_indexes_ends_only_those_idp_sessions(db_session, corp):
    first, second = saml_session(corp, "pat", "_s1"), saml_session(corp, "pat", "_s2")
    db_session.flush()
    assert saml_logout.end_idp_sessions(db_session, actor=Actor(user=None), provider=corp, name_id="pat",
                                        session_indexes=["_s2"]) == 1
    db_session.expire_all()
    assert first.ended_at is None and second.ended_at is not None


def test_our_logout_tells_the_idp_only_of_a_saml_session_through_an_enabled_connection_with_an_slo_url(
        db_session, corp):
    without_slo = connection(db_session)
    through_corp = saml_session(corp, "pat")
    db_session.flush()
    assert saml_logout.slo_connection(db_session, through_corp) is corp
    assert saml_logout.slo_connection(db_session, saml_session(without_slo, "pat")) is None
    assert saml_logout.slo_connection(db_session, factories.UserSessionFactory(kind=SessionKind.BROWSER)) is None
    assert saml_logout.slo_connection(db_session, None) is None
    corp.enabled = False
    assert saml_logout.slo_connection(db_session, through_corp) is None
