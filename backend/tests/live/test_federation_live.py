"""Federation between two real Gatehouses: the corporate one (its own SQLite database, signing keys and
loopback port) is the upstream OpenID provider of the live one. In headless Chromium: a relying party sends
the browser to the live Gatehouse, the person presses "Sign in with Corp", signs in on the corporate
Gatehouse's own page, comes back, consents, and the relying party redeems the code for an ID token whose
email and idp are right. Over HTTP (requests): the same round trip without a browser, and a second sign-in
that finds the person by subject.

The corporate Gatehouse is served at http://localhost:<port> and the live one at http://127.0.0.1:<port>:
cookies do not tell ports apart (RFC 6265 §8.5), so two hosts keep the browser's two sessions apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import field_cipher
from app.models import ExternalIdentity, IdentityProvider, User
from app.services import clients, users
from app.services.actor import Actor
from tests.live.conftest import LiveClient, LiveUser, _commit, _engine, second_gatehouse
from tests.live.flows import authorize
from tests.live.relying_party import Provider, discover, verify_id_token
from tests.live.test_browser import (browser, page, playwright, sign_in, start,  # noqa: F401 (fixtures)
                                     wait_for_callback)

CORP_EMAIL = "pat@corp.example"
CORP_PASSWORD = "corporate horse battery staple"


@dataclass(frozen=True)
class Corporate:
    issuer: str
    provider_id: str
    # The corporate Gatehouse itself, to add people to.
    app: Flask


@pytest.fixture
def corporate(tmp_path: Path, app: Flask, live_server: str) -> Iterator[Corporate]:
    """The corporate Gatehouse, serving; its user Pat; and, in the live Gatehouse, the `oidc` provider for it
    with a client registered at the corporate one for the provider's callback URL."""
    with second_gatehouse(tmp_path) as (issuer, corp_app):
        def add_provider(session: Session) -> str:
            provider = IdentityProvider(kind="oidc", name="Corp", client_id="pending", scopes=["email", "profile"],
                                        settings={"issuer": issuer})
            session.add(provider)
            session.flush()
            return str(provider.id)
        provider_id = _commit(app, add_provider)
        callback_url = f"{live_server}/federation/{provider_id}/callback"

        def add_user_and_client(session: Session) -> LiveClient:
            user = users.create_user(session, email=CORP_EMAIL, password=CORP_PASSWORD, name="Pat Corp",
                                     bcrypt_rounds=4)
            user.email_verified = True
            issued = clients.create_client(session, actor=Actor(user=None), name="Gatehouse",
                                           client_type="confidential", redirect_uris=[callback_url],
                                           grant_types=["authorization_code"], scopes=["openid", "email", "profile"],
                                           first_party=True)
            return LiveClient(client_id=issued.client.client_id, client_secret=issued.client_secret,
                              redirect_uri=callback_url, scopes=tuple(issued.client.scopes))
        corp_client = _commit(corp_app, add_user_and_client)

        def register_client(session: Session) -> None:
            provider = session.get(IdentityProvider, uuid.UUID(provider_id))
            provider.client_id = corp_client.client_id
            with app.app_context():
                provider.client_secret_ciphertext = field_cipher().encrypt(corp_client.client_secret)
        _commit(app, register_client)
        yield Corporate(issuer=issuer, provider_id=provider_id, app=corp_app)


def federated_accounts(app: Flask) -> list[tuple[str, str | None, str]]:
    with Session(_engine(app)) as session:
        rows = session.execute(select(User.email, User.password_hash, ExternalIdentity.subject)
                               .join(ExternalIdentity, ExternalIdentity.user_id == User.id)).all()
    return [tuple(row) for row in rows]


def test_browser_signs_in_through_the_corporate_gatehouse(page: Page, app: Flask, live_server: str,  # noqa: F811
                                                          web_client: LiveClient, corporate: Corporate):
    """relying party -> Gatehouse sign-in page -> "Sign in with Corp" -> the corporate sign-in page -> back
    -> consent -> the relying party's callback -> token exchange -> an ID token with email and idp."""
    provider: Provider = discover(live_server)
    auth = start(provider, web_client)
    page.goto(auth.url)
    page.get_by_role("link", name="Sign in with Corp").click()

    page.wait_for_url(lambda url: url.startswith(corporate.issuer + "/login"))
    sign_in(page, LiveUser(id="", email=CORP_EMAIL, password=CORP_PASSWORD, name=""))

    expect(page.get_by_role("heading", name="Live Web App wants to access your account")).to_be_visible()
    assert page.url.startswith(live_server + "/oauth2/authorize?")
    page.get_by_role("button", name="Allow").click()

    callback = wait_for_callback(page, web_client)
    assert callback["state"] == auth.state
    token = auth.session.fetch_token(provider["token_endpoint"], authorization_response=page.url,
                                     code_verifier=auth.code_verifier)
    claims = verify_id_token(provider, token["id_token"], client_id=web_client.client_id, nonce=auth.nonce,
                             access_token=token["access_token"])
    assert claims["email"] == CORP_EMAIL
    assert claims["idp"] == corporate.provider_id
    assert claims["amr"] == ["fed", "pwd"]
    [(email, password_hash, _subject)] = federated_accounts(app)
    assert (email, password_hash) == (CORP_EMAIL, None)


def test_http_round_trip_with_idp_hint_finds_the_person_by_subject_the_second_time(
        app: Flask, live_server: str, web_client: LiveClient, corporate: Corporate):
    provider: Provider = discover(live_server)
    for attempt in range(2):
        http = requests.Session()  # a new browser each time: no session at either Gatehouse
        auth = start(provider, web_client)
        url = authorize(http, f"{auth.url}&idp_hint={corporate.provider_id}", email=CORP_EMAIL,
                        password=CORP_PASSWORD)
        # authorize() follows redirects on one server only: it stops at the corporate Gatehouse.
        assert url.startswith(corporate.issuer + "/oauth2/authorize?"), (attempt, url)
        back = authorize(http, url, email=CORP_EMAIL, password=CORP_PASSWORD)
        assert back.startswith(live_server + f"/federation/{corporate.provider_id}/callback?")
        final = authorize(http, back, email=CORP_EMAIL, password=CORP_PASSWORD)
        query = {k: v[0] for k, v in parse_qs(urlsplit(final).query).items()}
        assert final.startswith(web_client.redirect_uri) and query["state"] == auth.state, final
    accounts = federated_accounts(app)
    assert len(accounts) == 1 and accounts[0][0] == CORP_EMAIL
