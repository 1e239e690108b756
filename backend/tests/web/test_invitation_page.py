"""The HTML page an invitation email links to: /invitations/accept?token=..."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from app.models import AuditEvent, Invitation, SessionKind, User, UserSession
from app.models.base import utcnow
from app.security import passwords
from app.security.browser_session import FRESH_LOGIN_KEY
from app.services import invitations, mail, organizations
from app.services.actor import Actor
from tests.conftest import make_settings
from tests.factories import UserFactory, create_organization
from tests.mailbox import invitation_token
from tests.oauth.helpers import Browser, SessionAwareClient, parse_page

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def settings(database_url):
    # Several sign-ins per test; the limits themselves are tested below and in tests/api.
    return make_settings(database_url, RATELIMIT_LOGIN="1000 per minute")


@pytest.fixture
def new_browser(app, db_session):
    """A browser without cookies, on a client that commits the test's transaction before each request."""
    app.test_client_class = SessionAwareClient
    return lambda: Browser(app.test_client(db_session=db_session))


@pytest.fixture
def browser(new_browser) -> Browser:
    return new_browser()


@pytest.fixture
def invite(db_session, org, owner, settings):
    """Invite through the service (by default into `org` as its owner); returns the invitation and its emailed token."""
    def send(email: str = "bob@example.com", role: str = "admin", organization=None,
             by: User | None = None) -> tuple[Invitation, str]:
        organization, by = organization or org, by or owner
        access = organizations.require_access(db_session, user=by, organization_id=organization.id,
                                              permission="members:invite")
        invitation = invitations.invite_member(db_session, actor=Actor(user=by), access=access, email=email,
                                               role=role, issuer=settings.ISSUER).invitation
        [message] = mail.queued(db_session)
        mail.drop_queued(db_session)
        db_session.commit()
        return invitation, invitation_token(message.body)
    return send


def page_url(token: str) -> str:
    return f"/invitations/accept?token={token}"


def open_page(browser: Browser, token: str) -> TestResponse:
    return browser.http.get(page_url(token))


def href_of(response: TestResponse, text: str) -> str:
    match = re.search(r'<a href="([^"]+)">' + re.escape(text), response.get_data(as_text=True))
    assert match, f"no link {text!r}"
    return html.unescape(match.group(1))


def membership_of(db_session, org, user):
    return organizations.get_membership(db_session, organization_id=org.id, user_id=user.id)


def assert_private(response: TestResponse) -> None:
    """The URL carries the token: keep it out of caches and Referer headers."""
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


# --- what the page shows ------------------------------------------------------------------------


def test_page_shows_organization_role_and_inviter(browser, invite):
    _, token = invite()

    response = open_page(browser, token)

    assert response.status_code == 200
    text = parse_page(response).text
    assert "Join Acme Corp" in text
    assert "Olive Owner (owner@example.com) invited bob@example.com to join Acme Corp with the role admin" in text
    assert_private(response)


def test_page_without_account_offers_sign_in_and_registration(browser, invite):
    _, token = invite()

    response = open_page(browser, token)

    page = parse_page(response)
    form = page.form
    assert form.action == "/invitations/register"
    assert {"csrf_token", "token", "name", "password"} <= set(form.fields)
    assert form.fields["token"] == token and form.fields["csrf_token"]
    assert {"email", "name", "password"} <= set(page.labels_for)
    assert href_of(response, "Sign in").startswith("/login?")
    # The password rule the page states is the one registration enforces.
    text = response.get_data(as_text=True)
    assert f'minlength="{passwords.MIN_LENGTH}"' in text and f"At least {passwords.MIN_LENGTH} characters" in text


def test_page_with_existing_account_offers_sign_in_only(browser, invite):
    UserFactory(email="bob@example.com")
    _, token = invite()

    response = open_page(browser, token)

    assert parse_page(response).forms == []
    assert "Sign in as bob@example.com" in parse_page(response).text


def test_page_signed_in_as_someone_else_says_so_without_accept(browser, invite):
    _, token = invite(email="bob@example.com")
    browser.sign_in(UserFactory(email="carol@example.com"))

    response = open_page(browser, token)

    assert response.status_code == 200
    text = parse_page(response).text
    assert "You are signed in as carol@example.com , but this invitation is for bob@example.com" in text
    assert parse_page(response).forms == []
    assert href_of(response, "Sign out") == "/oauth2/logout"


@pytest.mark.parametrize(("change", "words"), [
    ("expired", "expired"), ("revoked", "revoked"), ("accepted", "already been accepted"),
])
def test_page_for_invitation_no_longer_usable_is_410(browser, db_session, invite, change, words):
    invitation, token = invite()
    column = {"expired": "expires_at", "revoked": "revoked_at", "accepted": "accepted_at"}[change]
    setattr(invitation, column, utcnow() - timedelta(seconds=1))
    db_session.commit()

    response = open_page(browser, token)

    assert response.status_code == 410
    assert words in parse_page(response).text
    assert parse_page(response).forms == []
    assert_private(response)


@pytest.mark.parametrize("token", ["not-a-token", ""], ids=["unknown", "empty"])
def test_page_for_unknown_token_is_404(browser, invite, token):
    invite()

    response = open_page(browser, token)

    assert response.status_code == 404
    assert "not valid" in parse_page(response).text


# --- accepting, signed in ------------------------------------------------------------------------


def test_sign_in_link_returns_to_the_page_which_then_offers_accept(browser, invite):
    UserFactory(email="bob@example.com")
    _, token = invite()
    login_page = browser.http.get(href_of(open_page(browser, token), "Sign in"))
    assert parse_page(login_page).form.fields["email"] == "bob@example.com"

    signed_in = browser.submit_login(login_page, "bob@example.com")

    assert signed_in.status_code == 302
    assert signed_in.location == page_url(token)
    page = browser.http.get(signed_in.location)
    assert parse_page(page).form.buttons == [("accept", "yes")]


def test_accept_signed_in_joins_and_verifies_email(browser, db_session, invite, org):
    bob = UserFactory(email="bob@example.com", email_verified=False)
    _, token = invite()
    browser.sign_in(bob)
    form = parse_page(open_page(browser, token)).form

    response = browser.http.post(form.action, data={**form.fields, "accept": "yes"})

    assert response.status_code == 200
    assert "You joined Acme Corp" in parse_page(response).text
    assert membership_of(db_session, org, bob).role.name == "admin"
    db_session.refresh(bob)
    assert bob.email_verified is True
    assert_private(response)


@pytest.mark.parametrize("csrf_token", ["", "forged"], ids=["missing", "forged"])
def test_accept_without_valid_csrf_token_is_refused(browser, db_session, invite, org, csrf_token):
    bob = UserFactory(email="bob@example.com")
    _, token = invite()
    browser.sign_in(bob)

    response = browser.http.post("/invitations/accept", data={"csrf_token": csrf_token, "token": token})

    assert response.status_code == 400
    assert membership_of(db_session, org, bob) is None


def test_accept_signed_in_as_someone_else_is_403_and_audited(browser, db_session, invite, org):
    bob = UserFactory(email="bob@example.com")
    carol = UserFactory(email="carol@example.com")
    _, bob_token = invite()
    browser.sign_in(bob)
    form = parse_page(open_page(browser, bob_token)).form
    browser.sign_in(carol)  # e.g. another tab switched accounts

    response = browser.http.post(form.action, data=form.fields)

    assert response.status_code == 403
    assert "for another email address" in parse_page(response).text
    assert membership_of(db_session, org, carol) is None
    assert db_session.scalars(select(AuditEvent.details).where(AuditEvent.result == "failure")).all() == [
        {"reason": "email_mismatch"}]


def test_accept_twice_is_410(browser, invite):
    bob = UserFactory(email="bob@example.com")
    _, token = invite()
    browser.sign_in(bob)
    form = parse_page(open_page(browser, token)).form
    assert browser.http.post(form.action, data=form.fields).status_code == 200

    response = browser.http.post(form.action, data=form.fields)

    assert response.status_code == 410
    assert "already been accepted" in parse_page(response).text


def test_accept_after_signing_out_in_another_tab_shows_the_page_again(browser, db_session, invite, org):
    bob = UserFactory(email="bob@example.com")
    _, token = invite()
    browser.sign_in(bob)
    form = parse_page(open_page(browser, token)).form
    sign_out = parse_page(browser.http.get("/oauth2/logout")).form
    browser.http.post(sign_out.action, data={**sign_out.fields, "confirm": "yes"})

    response = browser.http.post(form.action, data=form.fields)

    assert response.status_code == 302
    assert response.location == page_url(token)
    assert membership_of(db_session, org, bob) is None


# --- registering through the page -----------------------------------------------------------------


def register(browser: Browser, token: str, **fields: str) -> TestResponse:
    form = parse_page(open_page(browser, token)).form
    return browser.http.post(form.action, data={**form.fields, **fields})


def test_register_creates_account_joins_and_signs_in(browser, db_session, invite, org, settings):
    _, token = invite(email="dana@example.com")

    response = register(browser, token, name="Dana", password=NEW_PASSWORD)

    assert response.status_code == 200
    assert "You joined Acme Corp" in parse_page(response).text
    dana = db_session.scalar(select(User).where(User.email == "dana@example.com"))
    assert (dana.name, dana.email_verified) == ("Dana", True)
    assert membership_of(db_session, org, dana).role.name == "admin"
    cookie = browser.http.get_cookie(settings.BROWSER_SESSION_COOKIE)
    assert cookie is not None and cookie.http_only
    [session] = db_session.scalars(select(UserSession).where(UserSession.user_id == dana.id)).all()
    assert session.kind == SessionKind.BROWSER
    assert_private(response)


def test_register_leaves_the_browser_signed_in(browser, db_session, invite):
    _, token = invite(email="dana@example.com")
    register(browser, token, name="Dana", password=NEW_PASSWORD)
    other_owner = UserFactory()
    globex = create_organization(db_session, owner=other_owner, slug="globex", name="Globex")
    _, second = invite(email="dana@example.com", organization=globex, by=other_owner)

    response = open_page(browser, second)

    assert parse_page(response).form.buttons == [("accept", "yes")]


@pytest.mark.parametrize(("password", "message"), [("", "Required"), ("short", "at least 8"),
                                                   ("password123", "too common")],
                         ids=["missing", "too-short", "common"])
def test_register_with_unusable_password_shows_form_again(browser, db_session, invite, password, message):
    _, token = invite(email="dana@example.com")

    response = register(browser, token, name="Dana", password=password)

    assert response.status_code == 422
    page = parse_page(response)
    assert message in page.text
    assert page.form.fields["name"] == "Dana"
    assert db_session.scalar(select(User).where(User.email == "dana@example.com")) is None


@pytest.mark.parametrize("csrf_token", ["", "forged"], ids=["missing", "forged"])
def test_register_without_valid_csrf_token_is_refused(browser, db_session, invite, csrf_token):
    _, token = invite(email="dana@example.com")

    response = register(browser, token, name="Dana", password=NEW_PASSWORD, csrf_token=csrf_token)

    assert response.status_code == 400
    assert db_session.scalar(select(User).where(User.email == "dana@example.com")) is None


def test_register_for_revoked_invitation_is_410(browser, db_session, invite):
    invitation, token = invite(email="dana@example.com")
    form = parse_page(open_page(browser, token)).form
    invitation.revoked_at = utcnow()
    db_session.commit()

    response = browser.http.post(form.action, data={**form.fields, "name": "Dana", "password": NEW_PASSWORD})

    assert response.status_code == 410
    assert db_session.scalar(select(User).where(User.email == "dana@example.com")) is None


def test_register_sixth_attempt_in_a_minute_is_429(browser, invite, settings):
    assert settings.RATELIMIT_REGISTER == "5 per minute"
    _, token = invite(email="dana@example.com")
    form = parse_page(open_page(browser, token)).form
    statuses = [browser.http.post(form.action, data={**form.fields, "password": "short"}).status_code
                for _ in range(5)]

    response = browser.http.post(form.action, data={**form.fields, "password": "short"})

    assert statuses == [422] * 5
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


def test_register_over_https_works_without_referer(app, client, db_session, invite):
    """The page sends no Referer (its URL carries the token), so the CSRF check must not require one."""
    _, token = invite(email="dana@example.com")
    db_session.commit()
    https = {"base_url": "https://auth.example.com"}
    form = parse_page(client.get(page_url(token), **https)).form

    response = client.post(form.action, data={**form.fields, "name": "Dana", "password": NEW_PASSWORD}, **https)

    assert response.status_code == 200
    assert "You joined Acme Corp" in parse_page(response).text


def test_signing_in_from_an_invitation_keeps_its_token_out_of_the_session_cookie(browser, invite):
    """Only an authorization request is remembered in the (signed, readable) Flask cookie; an
    invitation link carries its token."""
    UserFactory(email="bob@example.com")
    _, token = invite()
    login_page = browser.http.get(href_of(open_page(browser, token), "Sign in"))
    signed_in = browser.submit_login(login_page, "bob@example.com")
    assert signed_in.location == page_url(token)
    with browser.http.session_transaction() as flask_session:
        assert FRESH_LOGIN_KEY not in flask_session


def test_opening_the_page_slides_the_browser_sessions_idle_window(browser, db_session, invite):
    """The page commits nothing itself: the browser session's recorded use is committed for it."""
    bob = UserFactory(email="bob@example.com")
    _, token = invite()
    browser.sign_in(bob)
    session = db_session.scalar(select(UserSession).where(UserSession.user_id == bob.id))
    soon = utcnow() + timedelta(seconds=30)
    db_session.execute(update(UserSession).where(UserSession.id == session.id)
                       .values(expires_at=soon, last_seen_at=utcnow() - timedelta(minutes=2)))
    db_session.commit()

    assert open_page(browser, token).status_code == 200

    db_session.expire_all()
    assert db_session.get(UserSession, session.id).expires_at > soon


def test_registering_while_signed_in_as_someone_else_ends_that_session(browser, db_session, invite):
    """One browser, one signed-in user: the registration's new session replaces the browser's previous one."""
    carol = UserFactory(email="carol@example.com")
    _, token = invite(email="dana@example.com")
    form = parse_page(open_page(browser, token)).form  # the page, opened before signing in elsewhere
    browser.sign_in(carol)

    response = browser.http.post(form.action, data={**form.fields, "name": "Dana", "password": NEW_PASSWORD})
    assert response.status_code == 200, response.get_data(as_text=True)

    db_session.expire_all()
    [previous] = db_session.scalars(select(UserSession).where(UserSession.user_id == carol.id)).all()
    assert previous.ended_at is not None and previous.end_reason == "logout"
