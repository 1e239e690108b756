"""The sign-in and consent pages in a real browser.

Headless Chromium (Debian's /usr/bin/chromium, driven by Python playwright;
no `playwright install`) opens the authorization URL a relying party built
with Authlib, signs in, answers the consent page, and lands on the client's
redirect URI: a small HTTP server on a second loopback port (conftest's
redirect_target). The code is then redeemed with Authlib's OAuth2Session.

Chromium is required, not optional: .ci/run installs it, and without it these
tests fail rather than skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.integrations.requests_client import OAuth2Session
from playwright.sync_api import BrowserContext, Page, Playwright, expect, sync_playwright

from tests.live.conftest import LiveClient, LiveUser, RedirectTarget
from tests.live.relying_party import Provider, discover, oauth_session, verify_id_token

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    assert os.access(CHROMIUM, os.X_OK), (
        f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
        "(DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; .ci/run does this)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    """Chromium with a fresh user data dir (no cookies, no cache) for every test."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Page:
    return browser.pages[0] if browser.pages else browser.new_page()


@pytest.fixture
def provider(live_server: str) -> Provider:
    return discover(live_server)


@dataclass
class Authorization:
    session: OAuth2Session
    url: str
    state: str
    nonce: str
    code_verifier: str


def start(provider: Provider, client: LiveClient) -> Authorization:
    """The relying party's side: an authorization URL with state, nonce and PKCE S256, built by Authlib."""
    session = oauth_session(client)
    code_verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = session.create_authorization_url(provider["authorization_endpoint"], code_verifier=code_verifier,
                                                  nonce=nonce)
    return Authorization(session, url, state, nonce, code_verifier)


def sign_in(page: Page, user: LiveUser, password: str | None = None) -> None:
    """Identifier-first: the email, Continue, then the password (the page after an error asks for both)."""
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(user.email)
    if not page.get_by_label("Password", exact=True).is_visible():
        page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password", exact=True).fill(password or user.password)
    page.get_by_role("button", name="Sign in").click()


def wait_for_callback(page: Page, client: LiveClient) -> dict[str, str]:
    """Wait until the browser is on the client's redirect URI; return its query parameters."""
    page.wait_for_url(lambda url: url.startswith(client.redirect_uri + "?"))
    expect(page.get_by_text("Callback received.")).to_be_visible()  # served by the redirect target
    return {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}


def test_sign_in_and_consent_return_to_the_client_with_code_state_and_iss(
        page: Page, provider: Provider, web_client: LiveClient, live_user: LiveUser,
        redirect_target: RedirectTarget):
    """RFC 6749 §4.1.1-§4.1.2: the user signs in and allows; the browser is redirected to the registered
    redirect URI with code and the client's state, plus iss (RFC 9207 §2). The code is redeemed with PKCE
    (RFC 7636 §4.5) by Authlib, and the id_token carries the nonce (OIDC Core §3.1.3.7)."""
    auth = start(provider, web_client)
    page.goto(auth.url)
    sign_in(page, live_user)

    expect(page.get_by_role("heading", name="Live Web App wants to access your account")).to_be_visible()
    expect(page.get_by_text(f"Signed in as {live_user.email}")).to_be_visible()
    page.get_by_role("button", name="Allow").click()

    callback = wait_for_callback(page, web_client)
    assert callback["state"] == auth.state
    assert callback["iss"] == provider["issuer"]
    assert callback["code"]
    assert any(path.startswith("/cb?") and f"state={auth.state}" in path for path in redirect_target.paths)

    token = auth.session.fetch_token(provider["token_endpoint"], authorization_response=page.url,
                                     code_verifier=auth.code_verifier)
    claims = verify_id_token(provider, token["id_token"], client_id=web_client.client_id, nonce=auth.nonce,
                             access_token=token["access_token"])
    assert claims["sub"] == live_user.id
    assert auth.session.get(provider["userinfo_endpoint"]).json()["email"] == live_user.email


def test_deny_returns_access_denied(page: Page, provider: Provider, web_client: LiveClient, live_user: LiveUser):
    """RFC 6749 §4.1.2.1: the user denies; the browser returns to the client with error=access_denied, the
    state, iss (RFC 9207 §2), and no code."""
    auth = start(provider, web_client)
    page.goto(auth.url)
    sign_in(page, live_user)
    page.get_by_role("button", name="Deny").click()

    callback = wait_for_callback(page, web_client)
    assert callback["error"] == "access_denied"
    assert callback["state"] == auth.state
    assert callback["iss"] == provider["issuer"]
    assert "code" not in callback


def test_wrong_password_shows_the_error(page: Page, browser: BrowserContext, provider: Provider,
                                        web_client: LiveClient, live_user: LiveUser):
    """A wrong password keeps the user on the sign-in page with the error announced (role=alert, WCAG 2.1
    SC 4.1.3) and no session; signing in correctly afterwards continues the same authorization request
    (RFC 6749 §4.1.1: the request is not lost)."""
    auth = start(provider, web_client)
    page.goto(auth.url)
    sign_in(page, live_user, password="not the password at all")

    alert = page.get_by_role("alert")
    expect(alert).to_have_text("Invalid email or password.")
    expect(page.get_by_label("Email")).to_have_value(live_user.email)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    expect(page.get_by_label("Email")).to_have_attribute("aria-describedby", "login-error")
    assert "gatehouse_session" not in {c["name"] for c in browser.cookies(provider.issuer)}

    sign_in(page, live_user)
    page.get_by_role("button", name="Allow").click()
    assert wait_for_callback(page, web_client)["state"] == auth.state


def test_session_cookie_is_httponly_and_samesite_lax(page: Page, browser: BrowserContext, provider: Provider,
                                                     web_client: LiveClient, live_user: LiveUser):
    """RFC 6265 §4.1.2.6 HttpOnly and RFC 6265bis §4.1.2.7 SameSite=Lax on the sign-in session cookie (and on
    the cookie holding the CSRF secret): scripts cannot read them and cross-site subrequests do not carry
    them, while the top-level redirect back from a client still does."""
    auth = start(provider, web_client)
    page.goto(auth.url)
    sign_in(page, live_user)
    expect(page.get_by_role("button", name="Allow")).to_be_visible()

    cookies = {c["name"]: c for c in browser.cookies(provider.issuer)}
    session_cookie = cookies["gatehouse_session"]
    assert session_cookie["httpOnly"] is True
    assert session_cookie["sameSite"] == "Lax"
    assert session_cookie["path"] == "/"
    assert session_cookie["expires"] > 0  # bounded by the session's absolute lifetime
    for cookie in cookies.values():
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax", cookie
    assert "gatehouse_session" not in page.evaluate("document.cookie")


def test_keyboard_only_sign_in_and_consent(page: Page, provider: Provider, web_client: LiveClient,
                                           live_user: LiveUser):
    """WCAG 2.1 SC 2.1.1 (Keyboard) and 2.4.3 (Focus Order): with the keyboard alone, the email then Enter
    (identifier-first), then the password, Tab to Sign in, and the consent page is answered with Enter;
    the flow ends at the client with a code (RFC 6749 §4.1.2)."""
    auth = start(provider, web_client)
    page.goto(auth.url)
    email, password = page.get_by_label("Email"), page.get_by_label("Password", exact=True)
    sign_in_button = page.get_by_role("button", name="Sign in")

    expect(email).to_be_focused()  # autofocus: the first thing the user types into
    page.keyboard.press("Shift+Tab")  # nothing focusable comes before it
    assert page.evaluate("document.activeElement === document.body || document.activeElement === null")
    page.keyboard.press("Tab")
    expect(email).to_be_focused()
    page.keyboard.type(live_user.email)
    page.keyboard.press("Enter")
    expect(password).to_be_focused()  # autofocus on the password step
    page.keyboard.type(live_user.password)
    page.keyboard.press("Tab")
    expect(sign_in_button).to_be_focused()
    page.keyboard.press("Enter")

    allow = page.get_by_role("button", name="Allow")
    expect(allow).to_be_focused()  # autofocus on the consent decision
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Deny")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(allow).to_be_focused()
    page.keyboard.press("Enter")

    callback = wait_for_callback(page, web_client)
    assert callback["state"] == auth.state and callback["code"]
