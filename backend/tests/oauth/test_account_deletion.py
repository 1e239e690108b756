"""A deleted account's tokens die with it, whether its owner deletes it (DELETE /api/v1/users/me) or a
platform administrator does (DELETE /api/v1/admin/users/<id>): the refresh tokens go, and the access
tokens still within their lifetime are denied, as a suspension denies them (tests/oauth/test_suspension.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditEvent, RevokedToken
from tests import factories

OFFLINE = "openid profile email offline_access"


@pytest.fixture(params=["self", "admin"])
def delete_account(request, client, db_session):
    """Delete `user`'s account through the API, as its owner or as a platform administrator."""
    def delete(user) -> None:
        if request.param == "self":
            token = factories.session_token(user)
            db_session.commit()
            response = client.delete("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"},
                                     json={"password": factories.DEFAULT_PASSWORD})
        else:
            token = factories.session_token(factories.UserFactory(is_platform_admin=True))
            db_session.commit()
            response = client.delete(f"/api/v1/admin/users/{user.id}", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.get_json()
    return delete


def test_a_deleted_accounts_access_token_is_inactive_and_refused(obtain_tokens, web_client, introspect, bearer,
                                                                 delete_account, user, db_session):
    """RFC 7662 §2.2: active=false, nothing more; RFC 6750 §3.1: invalid_token at UserInfo."""
    tokens = obtain_tokens(web_client, scope="openid email")
    assert introspect(web_client, tokens["access_token"])["active"] is True

    delete_account(user)

    assert introspect(web_client, tokens["access_token"]) == {"active": False}
    response = bearer("/oauth2/userinfo", tokens["access_token"])
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert db_session.scalar(select(RevokedToken.key)) is not None  # the denial outlives the account's rows


def test_a_deleted_accounts_refresh_token_is_refused(obtain_tokens, web_client, token_request, introspect,
                                                     delete_account, user, db_session):
    """RFC 6749 §5.2: the grant is gone, invalid_grant; the deletion's audit event counts what it revoked."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)

    delete_account(user)

    refreshed = token_request(web_client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert (refreshed.status_code, refreshed.get_json()["error"]) == (400, "invalid_grant")
    assert introspect(web_client, tokens["refresh_token"], token_type_hint="refresh_token") == {"active": False}
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "user.deleted"))
    assert event.details == {"refresh_tokens_revoked": 1}
