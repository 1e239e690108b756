"""Registration's verification email, POST /api/v1/auth/email/verify and /email/resend, and REGISTRATION_OPEN."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import User
from tests.conftest import make_settings
from tests.mailbox import read_outbox, verification_token

PASSWORD = "a long enough passphrase"


@pytest.fixture
def settings(database_url, tmp_path):
    return make_settings(database_url, MAIL_OUTBOX_DIR=str(tmp_path / "outbox"))


def register(api, email="new@example.com"):
    return api.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "New"})


def emailed_token(settings) -> str:
    *_, message = read_outbox(settings.MAIL_OUTBOX_DIR)
    return verification_token(message.get_content())


def test_register_emails_a_verification_link(api, settings):
    response = register(api)

    assert response.status == 201 and response.data["email_verified"] is False
    [message] = read_outbox(settings.MAIL_OUTBOX_DIR)
    assert message["To"] == "new@example.com" and verification_token(message.get_content())


def test_verify_marks_the_email_verified(api, settings):
    register(api)

    response = api.post("/api/v1/auth/email/verify", json={"token": emailed_token(settings)})

    assert response.status == 200 and response.data["email_verified"] is True


def test_verify_with_a_link_used_twice_is_400(api, settings):
    register(api)
    body = {"token": emailed_token(settings)}
    assert api.post("/api/v1/auth/email/verify", json=body).status == 200

    assert api.post("/api/v1/auth/email/verify", json=body).error_type == "NOT_FOUND"


def test_resend_answers_202_alike_and_sends_only_to_an_unverified_account(api, settings):
    register(api)

    known = api.post("/api/v1/auth/email/resend", json={"email": "new@example.com"})
    unknown = api.post("/api/v1/auth/email/resend", json={"email": "nobody@example.com"})

    assert known.status == unknown.status == 202 and known.body["message"] == unknown.body["message"]
    assert len(read_outbox(settings.MAIL_OUTBOX_DIR)) == 2


def test_resend_is_rate_limited_per_address(api, database_url, app):
    limited = make_settings(database_url, RATELIMIT_ACCOUNT_MAIL_PER_ADDRESS="1 per hour")
    app.extensions["gatehouse.settings"] = limited

    answers = [api.post("/api/v1/auth/email/resend", json={"email": "new@example.com"}).status for _ in range(2)]

    assert answers == [202, 429]


def test_register_when_registration_is_closed_is_403(api, app, database_url, db_session):
    app.extensions["gatehouse.settings"] = make_settings(database_url, REGISTRATION_OPEN=False)

    response = register(api)

    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"
    assert db_session.scalars(select(User)).all() == []
