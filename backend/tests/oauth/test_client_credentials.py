"""/oauth2/token with grant_type=client_credentials (RFC 6749 §4.4)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from app.models import RefreshToken
from tests.oauth.conftest import MACHINE_SCOPES
from tests.oauth.helpers import ISSUER, verify_jwt


def client_credentials(token_request, registered, **form: str):
    return token_request(registered, grant_type="client_credentials", **form)


def test_client_credentials_token_identifies_the_client(token_request, machine_client, client, db_session):
    """RFC 6749 §4.4.3 (access token, no refresh token SHOULD be included) and RFC 9068 §2.2
    (sub is the client when no resource owner is involved)."""
    response = client_credentials(token_request, machine_client, scope="invoices:read")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "invoices:read"
    token = verify_jwt(client, body["access_token"])
    assert token.header["typ"] == "at+jwt"
    claims = token.claims
    assert claims["sub"] == machine_client.client_id
    assert claims["client_id"] == machine_client.client_id
    assert claims["aud"] == machine_client.client_id
    assert claims["iss"] == ISSUER
    assert claims["scope"] == "invoices:read"
    assert claims["exp"] - claims["iat"] == 600
    assert db_session.scalar(select(func.count()).select_from(RefreshToken)) == 0


def test_scope_defaults_to_the_clients_scopes(token_request, machine_client, client):
    """RFC 6749 §3.3: without a scope the server uses a documented default, here every scope of the client."""
    body = client_credentials(token_request, machine_client).get_json()
    assert body["scope"].split() == MACHINE_SCOPES
    assert verify_jwt(client, body["access_token"]).claims["scope"].split() == MACHINE_SCOPES


@pytest.mark.parametrize("scope", ["invoices:read payroll:read", "openid", "offline_access", "invoices:delete"],
                         ids=["partly-outside", "openid", "offline_access", "unknown"])
def test_scope_outside_the_clients_list_is_invalid_scope(token_request, machine_client, scope):
    """RFC 6749 §5.2 (invalid_scope: exceeds the scope granted) — never silently narrowed (§3.3)."""
    response = client_credentials(token_request, machine_client, scope=scope)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"
    assert "access_token" not in response.get_json()


def test_client_without_the_grant_is_unauthorized_client(token_request, web_client):
    """RFC 6749 §5.2: unauthorized_client when the client may not use this grant type."""
    response = client_credentials(token_request, web_client, scope="openid")
    assert response.status_code == 400
    assert response.get_json()["error"] == "unauthorized_client"


def test_public_client_cannot_use_client_credentials(token_request, spa_client):
    """RFC 6749 §4.4: the client credentials grant MUST only be used by confidential clients; a public
    client cannot authenticate for it (invalid_client, §5.2)."""
    response = client_credentials(token_request, spa_client)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_wrong_secret_is_invalid_client(token_request, machine_client):
    """RFC 6749 §5.2: invalid_client, 401 with a challenge for the Basic scheme used."""
    response = client_credentials(token_request, replace(machine_client, secret="not-the-secret"))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_client_credentials_with_client_secret_post(register, token_request, client):
    """RFC 6749 §2.3.1: a machine client registered for client_secret_post authenticates in the body."""
    post_client = register(name="Post Job", grant_types=["client_credentials"], scopes=["reports:read"],
                           token_endpoint_auth_method="client_secret_post")
    response = client_credentials(token_request, post_client)
    assert response.status_code == 200
    assert verify_jwt(client, response.get_json()["access_token"]).claims["sub"] == post_client.client_id
