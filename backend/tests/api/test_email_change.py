"""POST /api/v1/users/me/email: the change happens only when the new address opens its link; the old
address gets a notice, and the change kills the account's other emailed links."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AccountToken, AuditEvent, User, UserStatus
from app.services import users
from tests.conftest import make_settings
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.mailbox import read_outbox, reset_token, verification_link, verification_token

EMAIL = "/api/v1/users/me/email"
VERIFY = "/api/v1/auth/email/verify"
NEW = "new-address@example.com"


@pytest.fixture
def settings(database_url, tmp_path):
    return make_settings(database_url, MAIL_OUTBOX_DIR=str(tmp_path / "outbox"))


def outbox(settings) -> list:
    return read_outbox(settings.MAIL_OUTBOX_DIR)


def ask_change(api, user, login, settings, email=NEW) -> str:
    """Ask for the change through the API; returns the token mailed to the new address."""
    response = api.post(EMAIL, token=login(user), json={"email": email})
    assert response.status == 202, response.body
    *_, message = outbox(settings)
    assert message["To"] == email.lower()
    return verification_token(message.get_content())


def test_asking_mails_a_link_to_the_new_address_and_changes_nothing_yet(api, db_session, user, login, settings):
    old = user.email

    response = api.post(EMAIL, token=login(user), json={"email": NEW.upper()})

    assert response.status == 202 and response.data == {}
    [message] = outbox(settings)
    assert message["To"] == NEW
    assert verification_link(message.get_content()).startswith(f"{settings.ISSUER}/email/verify?token=")
    db_session.expire_all()
    assert db_session.get(User, user.id).email == old
    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "user.email_change_requested"))
    assert (event.actor_user_id, event.target_id) == (user.id, str(user.id))


def test_opening_the_link_changes_the_email_verified_and_notifies_the_old_address(api, db_session, login,
                                                                                  settings):
    user = UserFactory(email_verified=False)
    old = user.email
    token = ask_change(api, user, login, settings)

    response = api.post(VERIFY, json={"token": token})

    assert response.status == 200
    assert (response.data["email"], response.data["email_verified"]) == (NEW, True)
    notice = outbox(settings)[-1]
    assert notice["To"] == old and NEW in notice.get_content()
    assert "token=" not in notice.get_content()
    assert api.post("/api/v1/auth/login", json={"email": NEW, "password": DEFAULT_PASSWORD}).status == 200
    assert api.post("/api/v1/auth/login", json={"email": old, "password": DEFAULT_PASSWORD}).status == 401
    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "user.email_changed"))
    assert event.target_id == str(user.id)


def test_the_verification_page_confirms_the_change(client, api, db_session, user, login, settings):
    token = ask_change(api, user, login, settings)

    page = client.get(f"/email/verify?token={token}")

    assert page.status_code == 200 and NEW in page.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(User, user.id).email == NEW


def test_a_confirmed_change_kills_the_other_emailed_links(api, db_session, user, login, settings):
    api.post("/api/v1/auth/password/forgot", json={"email": user.email})
    reset = reset_token(outbox(settings)[0].get_content())
    token = ask_change(api, user, login, settings)

    assert api.post(VERIFY, json={"token": token}).status == 200

    response = api.post("/api/v1/auth/password/reset", json={"token": reset, "password": "a brand new passphrase"})
    assert response.status == 404
    assert db_session.scalars(select(AccountToken).where(AccountToken.used_at.is_(None))).all() == []


def test_a_change_link_works_once(api, user, login, settings):
    token = ask_change(api, user, login, settings)
    assert api.post(VERIFY, json={"token": token}).status == 200

    assert api.post(VERIFY, json={"token": token}).status == 404


def test_asking_again_replaces_the_pending_change(api, user, login, settings):
    first = ask_change(api, user, login, settings)
    second = ask_change(api, user, login, settings, email="second@example.com")

    assert api.post(VERIFY, json={"token": first}).status == 404
    assert api.post(VERIFY, json={"token": second}).data["email"] == "second@example.com"


def test_a_password_change_cancels_a_pending_change(api, user, login, settings):
    token = ask_change(api, user, login, settings)
    changed = api.post("/api/v1/users/me/password", token=login(user),
                       json={"current_password": DEFAULT_PASSWORD, "new_password": "a brand new passphrase"})
    assert changed.status == 200

    assert api.post(VERIFY, json={"token": token}).status == 404


def test_an_address_taken_before_the_link_is_opened_is_409_and_nothing_changes(api, db_session, user, login,
                                                                                settings):
    old = user.email
    token = ask_change(api, user, login, settings)
    UserFactory(email=NEW)

    response = api.post(VERIFY, json={"token": token})

    assert response.status == 409
    db_session.expire_all()
    assert db_session.get(User, user.id).email == old


def test_an_address_taken_between_the_check_and_the_write_is_409_not_a_500(api, db_session, user, login, settings,
                                                                           monkeypatch):
    """Two accounts confirming one address at once: the check passes for both, the unique email decides."""
    old = user.email
    token = ask_change(api, user, login, settings)
    UserFactory(email=NEW)
    db_session.commit()
    monkeypatch.setattr(users, "require_email_free", lambda *args, **kwargs: None)  # the check raced

    response = api.post(VERIFY, json={"token": token})

    assert response.status == 409 and response.body["message"] == "Another account has this email now."
    db_session.expire_all()
    assert db_session.get(User, user.id).email == old


def test_a_suspended_account_cannot_complete_a_change(api, db_session, user, login, settings):
    token = ask_change(api, user, login, settings)
    user.status = UserStatus.SUSPENDED
    db_session.commit()

    assert api.post(VERIFY, json={"token": token}).status == 403


def test_asking_for_an_address_another_account_has_is_409(api, user, login, settings):
    other = UserFactory()

    response = api.post(EMAIL, token=login(user), json={"email": other.email})

    assert response.status == 409 and response.error_type == "CONFLICT"
    assert outbox(settings) == []


def test_asking_for_the_current_address_is_422(api, user, login, settings):
    response = api.post(EMAIL, token=login(user), json={"email": user.email.upper()})

    assert response.status == 422 and "email" in response.body["error"]["details"]
    assert outbox(settings) == []


def test_asking_is_rate_limited_per_address_with_the_account_mail_budget(api, user, login, settings):
    assert settings.RATELIMIT_ACCOUNT_MAIL_PER_ADDRESS == "3 per hour"
    token = login(user)
    statuses = [api.post(EMAIL, token=token, json={"email": NEW}).status for _ in range(3)]

    response = api.post(EMAIL, token=token, json={"email": NEW})

    assert statuses == [202] * 3
    assert response.status == 429 and int(response.headers["Retry-After"]) > 0


def test_asking_without_a_session_is_401(api):
    assert api.post(EMAIL, json={"email": NEW}).status == 401
