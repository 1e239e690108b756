"""POST /api/v1/auth/password/forgot and /password/reset: the recovery flow through the API."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import RefreshToken
from app.security import passwords
from tests.conftest import make_settings
from tests.factories import OAuthClientFactory, UserFactory, issue_refresh_token
from tests.mailbox import read_outbox, reset_token

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def settings(database_url, tmp_path):
    return make_settings(database_url, MAIL_OUTBOX_DIR=str(tmp_path / "outbox"),
                         RATELIMIT_ACCOUNT_MAIL_PER_ADDRESS="2 per hour")


def emailed_token(settings) -> str:
    [message] = read_outbox(settings.MAIL_OUTBOX_DIR)
    return reset_token(message.get_content())


def test_forgot_answers_202_alike_for_known_and_unknown_addresses(api, user, settings):
    known = api.post("/api/v1/auth/password/forgot", json={"email": user.email})
    unknown = api.post("/api/v1/auth/password/forgot", json={"email": "nobody@example.com"})

    assert known.status == unknown.status == 202
    assert {k: v for k, v in known.body.items() if k != "request_id"} \
        == {k: v for k, v in unknown.body.items() if k != "request_id"}
    assert len(read_outbox(settings.MAIL_OUTBOX_DIR)) == 1


def test_forgot_is_rate_limited_per_address(api, user):
    for _ in range(2):
        assert api.post("/api/v1/auth/password/forgot", json={"email": user.email}).status == 202

    assert api.post("/api/v1/auth/password/forgot", json={"email": user.email.upper()}).status == 429


def test_reset_sets_the_password_signs_nothing_in_and_revokes_refresh_tokens(api, db_session, user, login, settings):
    token = login(user)
    issue_refresh_token(db_session, client=OAuthClientFactory(), user=user, organization=None)
    api.post("/api/v1/auth/password/forgot", json={"email": user.email})

    response = api.post("/api/v1/auth/password/reset", json={"token": emailed_token(settings),
                                                             "password": NEW_PASSWORD})

    assert response.status == 200 and response.data == {}
    assert api.get("/api/v1/auth/me", token=token).status == 401
    db_session.refresh(user)
    assert passwords.verify_password(NEW_PASSWORD, user.password_hash)
    assert db_session.scalars(select(RefreshToken.revoked_at)).one() is not None


def test_reset_with_a_link_used_twice_is_400(api, user, settings):
    api.post("/api/v1/auth/password/forgot", json={"email": user.email})
    body = {"token": emailed_token(settings), "password": NEW_PASSWORD}
    assert api.post("/api/v1/auth/password/reset", json=body).status == 200

    again = api.post("/api/v1/auth/password/reset", json=body)

    assert again.status == 404 and again.error_type == "NOT_FOUND"
    assert again.body["error"]["details"] == {"token": ["Invalid, expired or already used."]}


@pytest.mark.parametrize("body, field", [
    ({"password": NEW_PASSWORD}, "token"),
    ({"token": "x"}, "password"),
    ({"token": "x", "password": "short"}, "password"),
])
def test_reset_with_invalid_fields_is_422(api, body, field):
    response = api.post("/api/v1/auth/password/reset", json=body)

    assert response.status == 422 and field in response.body["error"]["details"]



def test_a_federated_account_without_a_password_sets_one_through_the_reset_flow(api, db_session, settings):
    federated = UserFactory(password_hash=None)
    assert api.post("/api/v1/auth/login", json={"email": federated.email, "password": NEW_PASSWORD}).status == 401

    assert api.post("/api/v1/auth/password/forgot", json={"email": federated.email}).status == 202
    reset = api.post("/api/v1/auth/password/reset", json={"token": emailed_token(settings), "password": NEW_PASSWORD})

    assert reset.status == 200
    assert api.post("/api/v1/auth/login", json={"email": federated.email, "password": NEW_PASSWORD}).status == 200
