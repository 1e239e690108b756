"""REQUIRE_VERIFIED_EMAIL: a signed-in person whose address is unverified sees the "verify your email"
page instead of being sent on to the client; email_verified in tokens and UserInfo is the stored value."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory
from tests.oauth.helpers import authorization_params, is_consent_page, parse_page, query_of, without_query


@pytest.fixture
def user(db_session):
    return UserFactory(email_verified=False)


@pytest.mark.settings(REQUIRE_VERIFIED_EMAIL=True)
def test_unverified_person_sees_the_verify_page_and_no_code(signed_in, web_client, pkce):
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce()))

    assert response.status_code == 403 and "Verify your email" in parse_page(response).text
    assert parse_page(response).labels_for == ["email"]


@pytest.mark.settings(REQUIRE_VERIFIED_EMAIL=True)
def test_unverified_person_with_prompt_none_gets_interaction_required(signed_in, web_client, pkce):
    """OIDC Core §3.1.2.6: interaction is needed (verifying the address) and prompt=none forbids it."""
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), prompt="none"))

    assert response.status_code == 302 and without_query(response.location) == web_client.redirect_uri
    assert query_of(response.location)["error"] == "interaction_required"


@pytest.mark.settings(REQUIRE_VERIFIED_EMAIL=True)
def test_verified_person_goes_on_to_consent(new_browser, db_session, web_client, pkce):
    browser = new_browser()
    browser.sign_in(UserFactory(email_verified=True))

    assert is_consent_page(browser.authorize(authorization_params(web_client, pkce=pkce())))


def test_unverified_person_goes_on_when_verification_is_not_required(signed_in, web_client, pkce):
    assert is_consent_page(signed_in.authorize(authorization_params(web_client, pkce=pkce())))
