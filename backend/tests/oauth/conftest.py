"""Fixtures for the protocol tests: registered clients, a browser that signs in
through the real /login form, PKCE pairs, and the authorization request.

Every request goes through `SessionAwareClient`, which commits the test's
`db_session` first (see tests/conftest.py on why tests never hold a transaction
or an app context while the app handles a request).

A test that needs other Settings says so with a marker:

    @pytest.mark.settings(AUTHORIZATION_CODE_LIFETIME=0)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from flask import Flask
from joserfc.jwk import RSAKey
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.config import Settings
from app.extensions import field_cipher
from app.models import IdentityProvider
from app.services import clients
from app.services.actor import Actor
from tests.conftest import make_settings
from tests.upstream import OpenIDProviderStandIn
from tests.oauth.helpers import (
    SPA_REDIRECT_URI,
    WEB_OTHER_REDIRECT_URI,
    WEB_POST_LOGOUT_URI,
    WEB_REDIRECT_URI,
    Browser,
    Pkce,
    Redirect,
    Registered,
    SessionAwareClient,
    authorization_params,
    is_consent_page,
    make_pkce,
    query_of,
)

USER_SCOPES = ["openid", "profile", "email", "offline_access"]
MACHINE_SCOPES = ["invoices:read", "invoices:write"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "settings(**overrides): build the test's app with these Settings overrides")


@pytest.fixture
def settings(request: pytest.FixtureRequest, database_url: str) -> Settings:
    marker = request.node.get_closest_marker("settings")
    # Every test here signs in. Flask-Limiter keeps the first app's RATELIMIT_KEY_PREFIX on its
    # module-level instance, so with Redis the login counter is shared by the whole run.
    overrides = {"RATELIMIT_LOGIN": "1000 per minute", **(marker.kwargs if marker else {})}
    return make_settings(database_url, **overrides)


@pytest.fixture
def http_client(app: Flask, db_session: Session) -> Callable[[], SessionAwareClient]:
    """A new, cookie-less test client (another browser, another server) on every call."""
    app.test_client_class = SessionAwareClient
    return lambda: app.test_client(db_session=db_session)


@pytest.fixture
def client(http_client) -> SessionAwareClient:
    return http_client()


# --- clients ------------------------------------------------------------------

@pytest.fixture
def register(db_session: Session) -> Callable[..., Registered]:
    """Register a client through the service, as an operator would, and commit it."""
    def create(*, name: str = "Client", client_type: str = "confidential", redirect_uris: list[str] = (),
               grant_types: list[str] = ("authorization_code", "refresh_token"), scopes: list[str] = USER_SCOPES,
               private_jwk: Any = None, **options: Any) -> Registered:
        if private_jwk is not None:
            options["jwks"] = {"keys": [private_jwk.as_dict(private=False)]}
        issued = clients.create_client(db_session, actor=Actor(user=None), name=name, client_type=client_type,
                                       redirect_uris=list(redirect_uris), grant_types=list(grant_types),
                                       scopes=list(scopes), **options)
        db_session.commit()
        client = issued.client
        return Registered(client_id=client.client_id, secret=issued.client_secret,
                          auth_method=client.token_endpoint_auth_method, redirect_uris=list(client.redirect_uris),
                          scopes=list(client.scopes), private_jwk=private_jwk)
    return create


@pytest.fixture
def web_client(register) -> Registered:
    """A confidential web app (client_secret_basic) with two redirect URIs, asking for consent."""
    return register(name="Relying Party", redirect_uris=[WEB_REDIRECT_URI, WEB_OTHER_REDIRECT_URI],
                    post_logout_redirect_uris=[WEB_POST_LOGOUT_URI])


@pytest.fixture
def spa_client(register) -> Registered:
    """A public single-page app: auth method none, PKCE, refresh rotation."""
    return register(name="Single Page App", client_type="public", redirect_uris=[SPA_REDIRECT_URI])


@pytest.fixture
def machine_client(register) -> Registered:
    """A confidential service using client credentials only."""
    return register(name="Billing Job", grant_types=["client_credentials"], scopes=MACHINE_SCOPES)


@pytest.fixture
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "alg": "RS256", "use": "sig"})


# --- the browser ----------------------------------------------------------------

@pytest.fixture
def browser(client) -> Browser:
    """A browser with no session yet."""
    return Browser(client)


@pytest.fixture
def new_browser(http_client) -> Callable[[], Browser]:
    return lambda: Browser(http_client())


@pytest.fixture
def signed_in(browser: Browser, user) -> Browser:
    """The `user`, signed in through the real /login form."""
    browser.sign_in(user)
    return browser


# --- PKCE, the authorization request and the code exchange -------------------------

@pytest.fixture
def pkce() -> Callable[[], Pkce]:
    return make_pkce


@pytest.fixture
def authorize(signed_in: Browser) -> Callable[..., Redirect]:
    """Send an authorization request with a signed-in browser, allow (or deny) consent
    if asked, and return the redirect to the client."""
    def run(client: Registered, *, browser: Browser | None = None, consent: str | None = "allow",
            pkce: Pkce | None = None, **options: Any) -> Redirect:
        browser = browser or signed_in
        pkce = pkce or make_pkce()
        params = authorization_params(client, pkce=pkce, **options)
        response = browser.authorize(params)
        if consent is not None and is_consent_page(response):
            response = browser.decide(response, consent)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        assert not response.location.startswith("/"), f"not a redirect to the client: {response.location}"
        return Redirect(response=response, location=response.location, params=query_of(response.location),
                        client=client, redirect_uri=params.get("redirect_uri"), pkce=pkce, nonce=params.get("nonce"))
    return run


@pytest.fixture
def token_request(client) -> Callable[..., TestResponse]:
    """POST to the token endpoint, authenticating as `registered` with its registered method (None: no auth)."""
    def post(registered: Registered | None, **form: str) -> TestResponse:
        if registered is None:
            return client.post("/oauth2/token", data=form)
        return client.post("/oauth2/token", **registered.authenticate(form))
    return post


@pytest.fixture
def exchange(token_request) -> Callable[..., TestResponse]:
    """Redeem the code of an authorization redirect (RFC 6749 §4.1.3), with its verifier."""
    def post(redirect: Redirect, **overrides: str | None) -> TestResponse:
        form = {"grant_type": "authorization_code", "code": redirect.code, "redirect_uri": redirect.redirect_uri,
                "code_verifier": redirect.pkce.verifier if redirect.pkce else None}
        form.update(overrides)
        return token_request(redirect.client, **{k: v for k, v in form.items() if v is not None})
    return post


@pytest.fixture
def obtain_tokens(authorize, exchange) -> Callable[..., dict[str, Any]]:
    """The whole code flow for `client`; returns the token response body."""
    def run(client: Registered, **options: Any) -> dict[str, Any]:
        response = exchange(authorize(client, **options))
        assert response.status_code == 200, response.get_json()
        return response.get_json()
    return run


@pytest.fixture
def bearer(client) -> Callable[..., TestResponse]:
    """Call a resource endpoint with an access token."""
    def call(path: str, token: str, method: str = "GET", **kwargs: Any) -> TestResponse:
        return client.open(path, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    return call


@pytest.fixture
def introspect(client) -> Callable[..., dict[str, Any]]:
    """RFC 7662 introspection as `registered`; returns the JSON body after checking for 200."""
    def post(registered: Registered, token: str, **form: str) -> dict[str, Any]:
        response = client.post("/oauth2/introspect", **registered.authenticate({"token": token, **form}))
        assert response.status_code == 200, response.get_json()
        return response.get_json()
    return post


# --- an upstream OpenID provider (tests/upstream.py) and the providers that sign in through it ---

@pytest.fixture
def upstream() -> Iterator[OpenIDProviderStandIn]:
    corp = OpenIDProviderStandIn()
    yield corp
    corp.close()


@pytest.fixture
def make_provider(app, db_session, upstream) -> Callable[..., IdentityProvider]:
    def create(**options: Any) -> IdentityProvider:
        with app.app_context():
            secret = field_cipher().encrypt(OpenIDProviderStandIn.CLIENT_SECRET)
        values = dict(kind="oidc", name="Corp", client_id=OpenIDProviderStandIn.CLIENT_ID,
                      client_secret_ciphertext=secret, scopes=["email", "profile"], trust_email=False,
                      allow_signup=True, settings={"issuer": upstream.issuer}) | options
        provider = IdentityProvider(**values)
        db_session.add(provider)
        db_session.commit()
        return provider
    return create
