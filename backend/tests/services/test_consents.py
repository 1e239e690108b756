"""When the consent page is shown (OIDC Core §3.1.2.1 prompt=consent, §3.1.2.4)."""

from __future__ import annotations

import pytest

from app.services import consents
from app.services.actor import Actor
from tests.factories import OAuthClientFactory, UserFactory

SCOPES = ["openid", "email"]


@pytest.fixture
def user(db_session):
    return UserFactory()


def test_consent_required_without_earlier_consent(db_session, user):
    client = OAuthClientFactory()

    assert consents.consent_required(db_session, user=user, client=client, scopes=SCOPES, prompt_consent=False)


def test_consent_not_required_when_earlier_consent_covers_scopes(db_session, user):
    client = OAuthClientFactory()
    consents.grant_consent(db_session, actor=Actor(user=user), user=user, client=client, scopes=SCOPES + ["profile"])

    assert not consents.consent_required(db_session, user=user, client=client, scopes=SCOPES, prompt_consent=False)


def test_consent_required_when_a_new_scope_is_asked_for(db_session, user):
    client = OAuthClientFactory()
    consents.grant_consent(db_session, actor=Actor(user=user), user=user, client=client, scopes=["openid"])

    assert consents.consent_required(db_session, user=user, client=client, scopes=SCOPES, prompt_consent=False)


def test_consent_required_when_prompted_even_with_earlier_consent(db_session, user):
    client = OAuthClientFactory()
    consents.grant_consent(db_session, actor=Actor(user=user), user=user, client=client, scopes=SCOPES)

    assert consents.consent_required(db_session, user=user, client=client, scopes=SCOPES, prompt_consent=True)


@pytest.mark.parametrize("prompt_consent", [False, True])
def test_consent_never_required_for_first_party_clients(db_session, user, prompt_consent):
    client = OAuthClientFactory(first_party=True)

    assert not consents.consent_required(db_session, user=user, client=client, scopes=SCOPES,
                                         prompt_consent=prompt_consent)
