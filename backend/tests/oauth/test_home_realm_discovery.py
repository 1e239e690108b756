"""Identifier-first sign-in and home-realm discovery: the sign-in page asks for the email; a verified domain
routed with auto_redirect sends the browser to its organization's connection (the pending authorization
request kept), anything else gets the password step with the platform providers' buttons; login_hint on
/oauth2/authorize does the same. The answer never depends on whether an account has the email. The
connection is an organization's OIDC connection to a real OpenID provider stand-in on loopback."""

from __future__ import annotations

import re
import secrets

import pytest

from app.models import IdentityProvider
from tests import factories
from tests.oauth.helpers import authorization_params, is_consent_page, parse_page, query_of, without_query


@pytest.fixture
def acme(db_session, owner):
    return factories.create_organization(db_session, owner=owner, slug="acme")


@pytest.fixture
def connection(make_provider, acme) -> IdentityProvider:  # noqa: F811
    return make_provider(organization_id=acme.id, name="Acme SSO")


@pytest.fixture
def routed(db_session, acme, connection):
    return factories.verified_domain(db_session, acme, "acme.test", connection, auto_redirect=True)


@pytest.fixture
def platform_provider(make_provider) -> IdentityProvider:  # noqa: F811
    return make_provider(name="Platform Corp")


def identify(browser, email: str, **query: str):
    """The first step: the email alone."""
    form = parse_page(browser.login_page(**query)).form
    return browser.http.post(form.action, data={**form.fields, "email": email})


def visible_inputs(response) -> set[str]:
    return {i["name"] for i in parse_page(response).form.inputs if i.get("type") != "hidden"}


def test_the_first_step_asks_for_the_email_only(browser, platform_provider):
    page = browser.login_page()
    assert page.status_code == 200
    assert visible_inputs(page) == {"email"}
    assert "Continue" in parse_page(page).text
    assert f"/federation/{platform_provider.id}/start" in page.get_data(as_text=True)


def test_an_email_of_an_unrouted_domain_gets_the_password_step(browser, routed, platform_provider):
    response = identify(browser, "pat@elsewhere.test")
    assert response.status_code == 200
    assert visible_inputs(response) == {"email", "password"}
    email = next(i for i in parse_page(response).form.inputs if i.get("name") == "email")
    assert email["value"] == "pat@elsewhere.test"
    assert f"/federation/{platform_provider.id}/start" in response.get_data(as_text=True)


def test_an_email_of_a_routed_domain_goes_to_its_connection_keeping_the_request(  # noqa: F811
        browser, routed, connection, upstream, web_client, pkce):
    to_login = browser.authorize(authorization_params(web_client, pkce=pkce()))
    next_url = query_of(to_login.location)["next"]
    response = identify(browser, "Ada@ACME.test", next=next_url)
    assert response.status_code == 303
    assert without_query(response.location) == f"/federation/{connection.id}/start"
    assert query_of(response.location)["next"] == next_url
    # On to the upstream, and back into the same authorization request.
    sent = query_of(browser.http.get(response.location).location)
    upstream.issue(nonce=sent["nonce"], email="ada@acme.test")
    back = browser.http.get(f"/federation/{connection.id}/callback",
                            query_string={"code": "corp-code", "state": sent["state"], "iss": upstream.issuer})
    assert back.status_code == 302 and back.location == next_url
    assert is_consent_page(browser.follow(back))


@pytest.mark.parametrize("change", ["no_auto_redirect", "unverified", "disabled_connection", "no_connection"])
def test_a_domain_not_routable_gets_the_password_step(browser, routed, connection, db_session, change):
    if change == "no_auto_redirect":
        routed.auto_redirect = False
    elif change == "unverified":
        routed.verified_at = None
    elif change == "disabled_connection":
        connection.enabled = False
    else:
        routed.identity_provider_id = None
    db_session.commit()
    response = identify(browser, "ada@acme.test")
    assert response.status_code == 200 and visible_inputs(response) == {"email", "password"}


def _normalized(response, email: str) -> str:
    """The page without what differs between any two renderings: the CSRF token and the CSP nonce."""
    html = response.get_data(as_text=True).replace(email, "EMAIL")
    return re.sub(r'(name="csrf_token" value|nonce)="[^"]*"', r'\1="…"', html)


@pytest.mark.parametrize("domain", ["elsewhere.test", "acme.test"])
def test_the_answer_is_the_same_for_known_and_unknown_emails(browser, new_browser, routed, domain, db_session):
    factories.UserFactory(email=f"known@{domain}")
    known = identify(browser, f"known@{domain}")
    unknown = identify(new_browser(), f"unknown@{domain}")
    assert known.status_code == unknown.status_code
    if known.status_code == 303:
        assert known.location == unknown.location
    else:
        assert _normalized(known, f"known@{domain}") == _normalized(unknown, f"unknown@{domain}")


def test_login_hint_on_authorize_goes_to_the_routed_connection(browser, routed, connection, web_client, pkce):
    to_login = browser.authorize(authorization_params(web_client, pkce=pkce(), login_hint="ada@acme.test"))
    response = browser.http.get(to_login.location)
    assert response.status_code == 303
    assert without_query(response.location) == f"/federation/{connection.id}/start"
    assert query_of(query_of(response.location)["next"])["client_id"] == web_client.client_id


def test_login_hint_of_an_unrouted_domain_gets_the_password_step(browser, routed):
    response = browser.login_page(login_hint="pat@elsewhere.test")
    assert response.status_code == 200 and visible_inputs(response) == {"email", "password"}


def test_an_empty_email_is_asked_for_again(browser):
    response = identify(browser, "  ")
    assert response.status_code == 422
    assert "Enter your email address." in parse_page(response).text
    assert visible_inputs(response) == {"email"}


@pytest.mark.settings(RATELIMIT_LOGIN="2 per minute")
def test_the_first_step_does_not_spend_the_sign_in_budget(browser, user):
    # An address of its own: with Redis, the limiter's counters outlive one test.
    browser.http.environ_base["REMOTE_ADDR"] = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.7"
    for _ in range(3):
        assert identify(browser, user.email).status_code == 200
    assert browser.submit_login(browser.login_page(), user.email).status_code == 200
