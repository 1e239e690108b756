"""/signup from the sign-in page of a pending authorization request, REGISTRATION_OPEN, and the
/email/verify pages."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from app.models import AuditEvent, User
from app.services import account_tokens, mail
from app.services.actor import Actor
from tests.oauth.helpers import Browser, authorization_params, is_consent_page, parse_page, without_query
from tests.mailbox import verification_token

PASSWORD = "a long enough passphrase"


def signup_href(login_page) -> str | None:
    match = re.search(r'<a href="([^"]*/signup[^"]*)">', login_page.get_data(as_text=True))
    return html.unescape(match.group(1)) if match else None


def submit_signup(browser: Browser, page, **values: str):
    form = parse_page(page).form
    return browser.http.post(form.action, data={**form.fields, "name": "Nell New", "email": "nell@example.com",
                                                "password": PASSWORD, **values})


def test_signup_from_a_pending_authorization_request_lands_back_on_it(browser, web_client, pkce, db_session):
    to_login = browser.authorize(authorization_params(web_client, pkce=pkce()))
    login_page = browser.http.get(to_login.location)
    signup_page = browser.http.get(signup_href(login_page))
    assert parse_page(signup_page).labels_for == ["name", "email", "password"]

    signed_up = submit_signup(browser, signup_page)

    assert signed_up.status_code == 302 and without_query(signed_up.location) == "/oauth2/authorize"
    assert is_consent_page(browser.follow(signed_up))
    user = db_session.scalars(select(User).where(User.email == "nell@example.com")).one()
    assert (user.name, user.email_verified) == ("Nell New", False)


@pytest.mark.parametrize("values, status, problem", [
    ({"password": "short"}, 422, "at least"),
    ({"email": "not an email"}, 422, "Not a valid email"),
])
def test_signup_with_invalid_fields_says_why_and_signs_nothing_in(browser, values, status, problem):
    response = submit_signup(browser, browser.http.get("/signup"), **values)

    assert response.status_code == status and problem in parse_page(response).text
    assert "Set-Cookie" not in response.headers or "gatehouse_session" not in response.headers["Set-Cookie"]


def test_signup_without_csrf_token_is_refused(browser, db_session):
    response = browser.http.post("/signup", data={"email": "nell@example.com", "password": PASSWORD})

    assert response.status_code == 400 and db_session.scalars(select(User)).all() == []


@pytest.mark.settings(REGISTRATION_OPEN=False)
def test_closed_registration_hides_the_link_and_refuses_the_page(browser, db_session):
    assert signup_href(browser.login_page()) is None
    assert browser.http.get("/signup").status_code == 404
    assert browser.http.post("/signup", data={"email": "nell@example.com", "password": PASSWORD}).status_code == 404
    assert db_session.scalars(select(User)).all() == []


@pytest.fixture
def verification(db_session, settings) -> str:
    """A new account's emailed verification token."""
    account_tokens.sign_up(db_session, actor=Actor(user=None), email="nell@example.com", password=PASSWORD,
                           name="", settings=settings)
    [message] = mail.queued(db_session)
    mail.drop_queued(db_session)
    db_session.commit()
    return verification_token(message.body)


def test_verify_page_verifies_the_email_once(browser, verification, db_session):
    done = browser.http.get(f"/email/verify?token={verification}")
    again = browser.http.get(f"/email/verify?token={verification}")

    assert done.status_code == 200 and "Your email is verified" in parse_page(done).text
    assert done.headers["Referrer-Policy"] == "no-referrer" and done.headers["Cache-Control"] == "no-store"
    assert again.status_code == 404 and parse_page(again).labels_for == ["email"]
    assert db_session.scalars(select(User.email_verified)).one() is True
    assert len(db_session.scalars(select(AuditEvent).where(AuditEvent.action == "user.email_verified")).all()) == 1


def test_send_again_answers_alike_for_known_and_unknown_addresses(browser, verification):
    page = browser.http.get("/email/verify/resend")
    form = parse_page(page).form

    known = browser.http.post(form.action, data={**form.fields, "email": "nell@example.com"})
    unknown = browser.http.post(form.action, data={**form.fields, "email": "nobody@example.com"})

    assert known.status_code == unknown.status_code == 200
    assert parse_page(known).text == parse_page(unknown).text
