"""The recovery pages: /password/forgot emails a one-time link, /password/reset?token=… sets a new password."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from werkzeug.test import TestResponse

from app import create_app
from app.models import AuditEvent, UserSession
from app.security import passwords
from tests.conftest import make_settings
from tests.factories import UserFactory, session_token
from tests.mailbox import read_outbox, reset_link
from tests.oauth.helpers import Browser, SessionAwareClient, parse_page

NEW_PASSWORD = "a brand new passphrase"


UNLIMITED = "1000 per minute"


@pytest.fixture
def settings(database_url, tmp_path):
    # Several requests per test; the limits have tests of their own below.
    return make_settings(database_url, MAIL_OUTBOX_DIR=str(tmp_path / "outbox"), RATELIMIT_ACCOUNT_MAIL=UNLIMITED,
                         RATELIMIT_ACCOUNT_MAIL_PER_ADDRESS=UNLIMITED)


@pytest.fixture
def browser(app, db_session) -> Browser:
    app.test_client_class = SessionAwareClient
    return Browser(app.test_client(db_session=db_session))


def submit(browser: Browser, page: TestResponse, **values: str) -> TestResponse:
    form = parse_page(page).form
    return browser.http.post(form.action, data={**form.fields, **values})


def ask_for_link(browser: Browser, email: str) -> TestResponse:
    return submit(browser, browser.http.get("/password/forgot"), email=email)


def emailed_reset_path(settings) -> str:
    [message] = read_outbox(settings.MAIL_OUTBOX_DIR)
    return reset_link(message.get_content()).removeprefix(settings.ISSUER)


def without_nonce(text: str) -> str:
    """The page or header with its per-response CSP nonce blanked out."""
    return re.sub(r"nonce[=-]['\"]?[A-Za-z0-9_+/=-]+", "nonce", text)


def assert_private(response: TestResponse) -> None:
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_sign_in_page_links_to_the_forgot_page(browser):
    assert 'href="/password/forgot"' in browser.login_page().get_data(as_text=True)


@pytest.mark.parametrize("path", ["/password/forgot", "/password/reset?token=x"])
def test_recovery_pages_are_private(browser, path):
    assert_private(browser.http.get(path))


def test_forgot_page_labels_its_field(browser):
    page = parse_page(browser.http.get("/password/forgot"))

    assert page.labels_for == ["email"] and "csrf_token" in page.form.fields


def test_forgot_page_without_csrf_token_is_refused(browser, user, settings):
    response = browser.http.post("/password/forgot", data={"email": user.email})

    assert response.status_code == 400 and read_outbox(settings.MAIL_OUTBOX_DIR) == []


def test_forgot_page_answers_known_and_unknown_addresses_alike(browser, user, settings):
    known = ask_for_link(browser, user.email)
    unknown = ask_for_link(browser, "nobody@example.com")

    assert (known.status_code, without_nonce(known.get_data(as_text=True))) \
        == (unknown.status_code, without_nonce(unknown.get_data(as_text=True)))
    assert known.status_code == 200 and "Check your email" in parse_page(known).text
    assert {k: without_nonce(v) for k, v in known.headers if k != "X-Request-ID"} \
        == {k: without_nonce(v) for k, v in unknown.headers if k != "X-Request-ID"}
    [message] = read_outbox(settings.MAIL_OUTBOX_DIR)
    assert message["To"] == user.email


def test_reset_page_sets_the_password_and_signs_nothing_in(browser, db_session, settings):
    person = UserFactory()
    session_token(person)
    ask_for_link(browser, person.email)
    page = browser.http.get(emailed_reset_path(settings))
    assert page.status_code == 200 and parse_page(page).labels_for == ["password"]
    assert_private(page)

    done = submit(browser, page, password=NEW_PASSWORD)

    assert done.status_code == 200 and "Your password is changed" in parse_page(done).text
    assert "Set-Cookie" not in done.headers or settings.BROWSER_SESSION_COOKIE not in done.headers["Set-Cookie"]
    db_session.refresh(person)
    assert passwords.verify_password(NEW_PASSWORD, person.password_hash)
    assert all(s.ended_at is not None for s in db_session.scalars(select(UserSession)))
    assert browser.sign_in(person, NEW_PASSWORD).status_code == 200


def test_reset_link_used_twice_is_refused_the_second_time(browser, user, settings):
    ask_for_link(browser, user.email)
    page = browser.http.get(emailed_reset_path(settings))
    assert submit(browser, page, password=NEW_PASSWORD).status_code == 200

    again = submit(browser, page, password="yet another passphrase")
    reopened = browser.http.get(emailed_reset_path(settings))

    assert again.status_code == reopened.status_code == 404
    assert "This link cannot be used" in parse_page(again).text


def test_reset_page_with_a_weak_password_says_why_and_keeps_the_link(browser, user, settings):
    ask_for_link(browser, user.email)
    page = browser.http.get(emailed_reset_path(settings))

    refused = submit(browser, page, password="short")

    assert refused.status_code == 422
    assert 'aria-invalid="true"' in refused.get_data(as_text=True)
    assert submit(browser, refused, password=NEW_PASSWORD).status_code == 200


def test_reset_page_without_csrf_token_is_refused(browser, user, settings, db_session):
    ask_for_link(browser, user.email)
    token = parse_page(browser.http.get(emailed_reset_path(settings))).form.fields["token"]

    response = browser.http.post("/password/reset", data={"token": token, "password": NEW_PASSWORD})

    assert response.status_code == 400
    assert db_session.scalars(select(AuditEvent).where(AuditEvent.action == "user.password_reset")).all() == []


def browser_with_limits(database_url, db_session, **limits: str) -> Browser:
    limited = create_app(make_settings(database_url, **{"RATELIMIT_ACCOUNT_MAIL": UNLIMITED,
                                                        "RATELIMIT_ACCOUNT_MAIL_PER_ADDRESS": UNLIMITED, **limits}))
    limited.test_client_class = SessionAwareClient
    return Browser(limited.test_client(db_session=db_session))


def test_forgot_page_is_rate_limited_per_address_known_or_not(app, database_url, db_session):
    browser = browser_with_limits(database_url, db_session, RATELIMIT_ACCOUNT_MAIL_PER_ADDRESS="2 per hour")

    answers = [ask_for_link(browser, email).status_code
               for email in ("someone@example.com", "Someone@example.com ", "someone@example.com")]

    assert answers == [200, 200, 429]
    assert ask_for_link(browser, "someone-else@example.com").status_code == 200


def test_forgot_page_is_rate_limited_per_client_ip(app, database_url, db_session):
    browser = browser_with_limits(database_url, db_session, RATELIMIT_ACCOUNT_MAIL="2 per hour")

    answers = [ask_for_link(browser, f"person{n}@example.com").status_code for n in range(3)]

    assert answers == [200, 200, 429]
