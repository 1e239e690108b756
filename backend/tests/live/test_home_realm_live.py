"""Home-realm discovery and enforce_sso end to end in headless Chromium: acme verified acme.test and routes it,
with auto_redirect and enforce_sso, to its own OIDC connection — a second, real Gatehouse on loopback (the
"corporate" IdP of test_federation_live.py, its provider made acme's). The person types ada@acme.test, lands
at acme's IdP, signs in there and comes back into the relying party; the same person's password is refused.
"""

from __future__ import annotations

import uuid

import requests
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from app.models import IdentityProvider, OrganizationDomain
from app.models.base import utcnow
from app.security.passwords import hash_password
from app.services import organizations, users
from app.services.actor import Actor
from tests.live.conftest import LiveClient, LiveUser, _commit
from tests.live.flows import forms_of
from tests.live.relying_party import Provider, discover, verify_access_token, verify_id_token
from tests.live.test_browser import (browser, page, playwright, sign_in, start,  # noqa: F401 (fixtures)
                                     wait_for_callback)
from tests.live.test_federation_live import Corporate, corporate  # noqa: F401 (a fixture)

ADA = LiveUser(id="", email="ada@acme.test", password="ada's corporate passphrase", name="Ada Acme")
SSO_MESSAGE = "Your organization requires single sign-on (SSO) for this email address"


def _acme_routes_its_domain_to(app: Flask, corporate: Corporate) -> str:  # noqa: F811
    """Acme's id: its verified domain acme.test routes to, and enforces, the corporate connection."""
    def build(session: Session) -> str:
        owner = users.create_user(session, email="owner@acme.test", password=None, name="Owner", bcrypt_rounds=4)
        acme = organizations.create_organization(session, actor=Actor(user=owner), name="Acme", slug="acme")
        connection = session.get(IdentityProvider, uuid.UUID(corporate.provider_id))
        connection.organization_id = acme.id
        connection.name = "Acme SSO"
        session.add(OrganizationDomain(organization_id=acme.id, domain="acme.test", verification_token="t",
                                       verified_at=utcnow(), identity_provider_id=connection.id,
                                       auto_redirect=True, enforce_sso=True))
        session.flush()
        return str(acme.id)
    acme_id = _commit(app, build)

    def add_ada(session: Session) -> None:
        person = users.create_user(session, email=ADA.email, password=ADA.password, name=ADA.name, bcrypt_rounds=4)
        person.email_verified = True
    _commit(corporate.app, add_ada)
    return acme_id


def test_typing_an_acme_address_signs_in_at_acmes_idp_and_a_password_is_refused(
        page: Page, app: Flask, live_server: str, web_client: LiveClient, corporate: Corporate):  # noqa: F811
    acme_id = _acme_routes_its_domain_to(app, corporate)
    provider: Provider = discover(live_server)
    auth = start(provider, web_client)
    page.goto(auth.url)

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(ADA.email)
    page.get_by_role("button", name="Continue").click()

    # Straight on to acme's IdP (no password asked here): its own sign-in page.
    page.wait_for_url(lambda url: url.startswith(corporate.issuer + "/login"))
    sign_in(page, ADA)

    expect(page.get_by_role("heading", name="Live Web App wants to access your account")).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    callback = wait_for_callback(page, web_client)
    assert callback["state"] == auth.state
    token = auth.session.fetch_token(provider["token_endpoint"], authorization_response=page.url,
                                     code_verifier=auth.code_verifier)
    claims = verify_id_token(provider, token["id_token"], client_id=web_client.client_id, nonce=auth.nonce,
                             access_token=token["access_token"])
    assert claims["email"] == ADA.email and claims["idp"] == corporate.provider_id
    # Back a member of acme (just in time), and the relying party sees acme without asking for it.
    access = verify_access_token(provider, token["access_token"], client_id=web_client.client_id)
    for issued in (claims, access):
        assert (issued["org_id"], issued["org_slug"], issued["org_roles"]) == (acme_id, "acme", ["member"])

    # The same person, with a password on their account, is refused it: by the API and by the page.
    def give_a_password(session: Session) -> None:
        users.get_user_by_email(session, ADA.email).password_hash = hash_password(ADA.password, 4)
    _commit(app, give_a_password)
    refused = requests.post(f"{live_server}/api/v1/auth/login", json={"email": ADA.email, "password": ADA.password},
                            timeout=10)
    assert refused.status_code == 403 and refused.json()["message"].startswith(SSO_MESSAGE)
    with requests.Session() as http:
        [form] = forms_of(http.get(f"{live_server}/login", timeout=10).text)
        answer = http.post(f"{live_server}{form.action}", timeout=10, allow_redirects=False,
                           data={**form.fields, "email": ADA.email, "password": ADA.password})
    assert answer.status_code == 403 and SSO_MESSAGE in answer.text
