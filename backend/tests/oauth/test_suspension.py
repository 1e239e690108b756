"""A platform administrator suspends a user (POST /api/v1/admin/users/<id>/suspend): what the user's
relying parties and resource servers see at once, through the protocol endpoints."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import SessionEndReason, UserSession
from tests import factories

OFFLINE = "openid profile email offline_access"


@pytest.fixture
def suspend(client, db_session):
    """Suspend `user` through the admin API, as a platform administrator; returns the response body."""
    def post(user) -> dict:
        token = factories.session_token(factories.UserFactory(is_platform_admin=True))
        db_session.commit()
        response = client.post(f"/api/v1/admin/users/{user.id}/suspend", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.get_json()
        return response.get_json()
    return post


@pytest.fixture
def unsuspend(client, db_session):
    def post(user) -> None:
        token = factories.session_token(factories.UserFactory(is_platform_admin=True))
        db_session.commit()
        response = client.post(f"/api/v1/admin/users/{user.id}/unsuspend",
                               headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.get_json()
    return post


def test_introspection_says_a_suspended_users_access_token_is_inactive(obtain_tokens, web_client, introspect,
                                                                       suspend, user):
    """RFC 7662 §2.2: a token that was revoked is not active, and the answer is then just active=false."""
    tokens = obtain_tokens(web_client, scope="openid email")
    assert introspect(web_client, tokens["access_token"])["active"] is True

    suspend(user)

    assert introspect(web_client, tokens["access_token"]) == {"active": False}


def test_introspection_says_a_suspended_users_refresh_token_is_inactive(obtain_tokens, web_client, introspect,
                                                                        suspend, user):
    """RFC 7662 §2.2: a revoked refresh token is not active."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)

    suspend(user)

    assert introspect(web_client, tokens["refresh_token"], token_type_hint="refresh_token") == {"active": False}


def test_userinfo_refuses_a_suspended_users_access_token(obtain_tokens, web_client, bearer, suspend, user):
    """RFC 6750 §3.1: a revoked access token is invalid_token, 401 with a Bearer challenge."""
    tokens = obtain_tokens(web_client, scope="openid email")
    assert bearer("/oauth2/userinfo", tokens["access_token"]).status_code == 200

    suspend(user)

    response = bearer("/oauth2/userinfo", tokens["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_access_token_stays_dead_after_unsuspension(obtain_tokens, web_client, bearer, introspect, suspend,
                                                    unsuspend, user):
    """The suspension denied the token (RFC 7009 §2's effect): making the account active again revives nothing."""
    tokens = obtain_tokens(web_client, scope="openid email")
    suspend(user)

    unsuspend(user)

    assert introspect(web_client, tokens["access_token"]) == {"active": False}
    assert bearer("/oauth2/userinfo", tokens["access_token"]).status_code == 401


def test_a_suspended_users_refresh_token_is_refused(obtain_tokens, web_client, token_request, suspend, unsuspend,
                                                   user):
    """RFC 6749 §5.2: a revoked refresh token is invalid_grant, even once the account is active again."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    suspend(user)
    unsuspend(user)

    response = token_request(web_client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])

    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_suspension_ends_the_users_browser_sessions(signed_in, db_session, suspend, user):
    suspend(user)

    ended = db_session.scalars(select(UserSession).where(UserSession.user_id == user.id)).all()
    assert ended and all(s.ended_at is not None and s.end_reason == SessionEndReason.SUSPENDED for s in ended)
