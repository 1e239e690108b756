"""When the consent page is shown (OIDC Core §3.1.2.1 prompt=consent, §3.1.2.4), per organization context."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.models import AuditEvent, Consent
from app.services import consents
from app.services.actor import Actor
from tests.factories import OAuthClientFactory, UserFactory, create_organization

SCOPES = ["openid", "email"]


@pytest.fixture
def user(db_session):
    return UserFactory()


@pytest.fixture
def acme(db_session, user):
    return create_organization(db_session, owner=user, slug="acme")


@pytest.fixture
def globex(db_session, user):
    return create_organization(db_session, owner=user, slug="globex")


def test_consent_required_without_earlier_consent(db_session, user):
    client = OAuthClientFactory()

    assert consents.consent_required(db_session, user=user, client=client, scopes=SCOPES, organization_id=None,
                                     prompt_consent=False)


def test_consent_not_required_when_earlier_consent_covers_scopes(db_session, user):
    client = OAuthClientFactory()
    consents.grant_consent(db_session, actor=Actor(user=user), user=user, client=client, scopes=SCOPES + ["profile"],
                           organization_id=None)

    assert not consents.consent_required(db_session, user=user, client=client, scopes=SCOPES, organization_id=None,
                                         prompt_consent=False)


def test_consent_required_when_a_new_scope_is_asked_for(db_session, user):
    client = OAuthClientFactory()
    consents.grant_consent(db_session, actor=Actor(user=user), user=user, client=client, scopes=["openid"],
                           organization_id=None)

    assert consents.consent_required(db_session, user=user, client=client, scopes=SCOPES, organization_id=None,
                                     prompt_consent=False)


def test_consent_required_when_prompted_even_with_earlier_consent(db_session, user):
    client = OAuthClientFactory()
    consents.grant_consent(db_session, actor=Actor(user=user), user=user, client=client, scopes=SCOPES,
                           organization_id=None)

    assert consents.consent_required(db_session, user=user, client=client, scopes=SCOPES, organization_id=None,
                                     prompt_consent=True)


@pytest.mark.parametrize("prompt_consent", [False, True])
def test_consent_never_required_for_first_party_clients(db_session, user, prompt_consent):
    client = OAuthClientFactory(first_party=True)

    assert not consents.consent_required(db_session, user=user, client=client, scopes=SCOPES, organization_id=None,
                                         prompt_consent=prompt_consent)


# --- organization context --------------------------------------------------------------

def test_consent_in_one_organization_is_not_consent_in_another(db_session, user, acme, globex):
    client = OAuthClientFactory()
    consents.grant_consent(db_session, actor=Actor(user=user), user=user, client=client, scopes=SCOPES,
                           organization_id=acme.id)

    assert not consents.consent_required(db_session, user=user, client=client, scopes=SCOPES,
                                         organization_id=acme.id, prompt_consent=False)
    assert consents.consent_required(db_session, user=user, client=client, scopes=SCOPES,
                                     organization_id=globex.id, prompt_consent=False)


@pytest.mark.parametrize("given_in, asked_in", [(None, "acme"), ("acme", None)],
                         ids=["none-then-organization", "organization-then-none"])
def test_consent_with_and_without_an_organization_do_not_count_for_each_other(db_session, user, acme, given_in,
                                                                               asked_in):
    client = OAuthClientFactory()
    context = {None: None, "acme": acme.id}
    consents.grant_consent(db_session, actor=Actor(user=user), user=user, client=client, scopes=SCOPES,
                           organization_id=context[given_in])

    assert consents.consent_required(db_session, user=user, client=client, scopes=SCOPES,
                                     organization_id=context[asked_in], prompt_consent=False)


@pytest.mark.parametrize("in_acme", [False, True], ids=["no-organization", "organization"])
def test_grant_consent_again_extends_the_one_consent_of_that_context(db_session, user, acme, in_acme):
    """The existing row is found (IS NULL for "no organization") and extended, never duplicated."""
    client = OAuthClientFactory()
    organization_id = acme.id if in_acme else None
    for scopes in (["openid"], ["email"]):
        consents.grant_consent(db_session, actor=Actor(user=user), user=user, client=client, scopes=scopes,
                               organization_id=organization_id)
        db_session.flush()

    [consent] = db_session.scalars(select(Consent)).all()
    assert (consent.organization_id, consent.scopes) == (organization_id, ["email", "openid"])


def test_database_keeps_one_consent_without_organization_per_user_and_client(db_session, user):
    """NULLs are distinct in the (user, client, organization) unique constraint; the partial
    unique index uq_consents_user_id_client_pk_no_organization refuses the second row."""
    client = OAuthClientFactory()
    db_session.add(Consent(user_id=user.id, client_pk=client.id, organization_id=None, scopes=["openid"]))
    db_session.flush()
    db_session.add(Consent(user_id=user.id, client_pk=client.id, organization_id=None, scopes=["email"]))

    with pytest.raises(IntegrityError):
        db_session.flush()
    db_session.rollback()


def test_grant_consent_is_audited_in_the_organization(db_session, user, acme):
    client = OAuthClientFactory()
    consents.grant_consent(db_session, actor=Actor(user=user), user=user, client=client, scopes=SCOPES,
                           organization_id=acme.id)
    db_session.flush()

    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "oauth.consent_granted")).all()
    assert (event.organization_id, event.target_id, event.details) == (acme.id, client.client_id,
                                                                       {"scopes": ["email", "openid"]})
