"""Accounts in a real browser, each link read from the mail outbox: recovery from the sign-in page to a new
password, then signing in with it through a relying party's authorization request; and a new person
signing up from a relying party's sign-in page, landing back in it, then verifying the email."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import make_settings
from tests.live.conftest import HOST, LiveClient, LiveUser
from tests.live.relying_party import Provider, discover
from tests.live.test_browser import browser, page, playwright, sign_in, start, wait_for_callback  # noqa: F401
from tests.mailbox import read_outbox, reset_link, verification_link

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def settings(database_url, _live_socket, tmp_path: Path):
    """The live server's settings, with an outbox of this test's own."""
    return make_settings(database_url, ISSUER=f"http://{HOST}:{_live_socket.port}",
                         MAIL_OUTBOX_DIR=str(tmp_path / "outbox"))


@pytest.fixture
def provider(live_server: str) -> Provider:
    return discover(live_server)


def test_forgotten_password_is_reset_through_the_emailed_link(page: Page, provider: Provider, settings,  # noqa: F811
                                                              web_client: LiveClient, live_user: LiveUser):
    page.goto(start(provider, web_client).url)
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(live_user.email)
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    [message] = read_outbox(settings.MAIL_OUTBOX_DIR)
    response = page.goto(reset_link(message.get_content()))
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_role("heading", name="Your password is changed")).to_be_visible()

    auth = start(provider, web_client)
    page.goto(auth.url)
    sign_in(page, live_user, password=NEW_PASSWORD)
    page.get_by_role("button", name="Allow").click()
    assert wait_for_callback(page, web_client)["state"] == auth.state


def test_reset_link_opened_again_after_use_says_it_cannot_be_used(page: Page, provider: Provider,  # noqa: F811
                                                                  settings, live_user: LiveUser):
    page.goto(provider.issuer + "/password/forgot")
    page.get_by_label("Email").fill(live_user.email)
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    [message] = read_outbox(settings.MAIL_OUTBOX_DIR)
    link = reset_link(message.get_content())
    page.goto(link)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_role("heading", name="Your password is changed")).to_be_visible()

    assert page.goto(link).status == 404
    expect(page.get_by_role("alert")).to_contain_text("already been used")


def test_new_person_signs_up_from_the_relying_party_and_verifies_the_email(page: Page,  # noqa: F811
                                                                            provider: Provider, settings,
                                                                            web_client: LiveClient):
    auth = start(provider, web_client)
    page.goto(auth.url)
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Name").fill("Nell New")
    page.get_by_label("Email").fill("nell@example.com")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Create the account").click()
    page.get_by_role("button", name="Allow").click()
    assert wait_for_callback(page, web_client)["state"] == auth.state

    [message] = read_outbox(settings.MAIL_OUTBOX_DIR)
    assert message["To"] == "nell@example.com"
    response = page.goto(verification_link(message.get_content()))
    assert response.headers["referrer-policy"] == "no-referrer"
    expect(page.get_by_role("heading", name="Your email is verified")).to_be_visible()
