"""/oauth2/introspect (RFC 7662)."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

import pytest
from joserfc import jwt

from app.stores.keysets import one_key_keyset
from tests.oauth.helpers import ISSUER, verify_jwt

OFFLINE = "openid profile email offline_access"


def test_introspection_requires_client_authentication(obtain_tokens, web_client, client):
    """RFC 7662 §2.1: the endpoint MUST require authorization; RFC 6749 §5.2: invalid_client with 401."""
    tokens = obtain_tokens(web_client, scope="openid")
    response = client.post("/oauth2/introspect", data={"token": tokens["access_token"]})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert "active" not in response.get_json()


def test_wrong_secret_is_rejected(obtain_tokens, web_client, client):
    """RFC 7662 §2.1 and RFC 6749 §5.2: a failed Basic authentication is 401 with a Basic challenge."""
    tokens = obtain_tokens(web_client, scope="openid")
    response = client.post("/oauth2/introspect",
                           **replace(web_client, secret="wrong").authenticate({"token": tokens["access_token"]}))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_public_client_cannot_introspect(obtain_tokens, spa_client, client):
    """RFC 7662 §2.1 / §4: only authenticated (confidential) clients may introspect; a client_id alone is not enough."""
    tokens = obtain_tokens(spa_client, scope="openid")
    response = client.post("/oauth2/introspect", data={"token": tokens["access_token"],
                                                        "client_id": spa_client.client_id})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_active_access_token(obtain_tokens, web_client, introspect, client, user):
    """RFC 7662 §2.2: active true with scope, client_id, sub, exp, iat, iss, token_type (and aud, jti)."""
    tokens = obtain_tokens(web_client, scope="openid email")
    claims = verify_jwt(client, tokens["access_token"]).claims
    body = introspect(web_client, tokens["access_token"])
    assert body == {"active": True, "scope": "openid email", "client_id": web_client.client_id,
                    "sub": str(user.id), "aud": web_client.client_id, "iss": ISSUER, "exp": claims["exp"],
                    "iat": claims["iat"], "jti": claims["jti"], "token_type": "Bearer"}


def test_active_refresh_token(obtain_tokens, web_client, introspect, user):
    """RFC 7662 §2.1 (token_type_hint refresh_token) and §2.2: a refresh token is introspectable too. It
    has no token_type: §2.2's is an access token type (RFC 6749 §7.1), which "refresh_token" is not."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    for hint in (None, "refresh_token"):
        body = introspect(web_client, tokens["refresh_token"], **({"token_type_hint": hint} if hint else {}))
        assert body["active"] is True
        assert "token_type" not in body
        assert body["scope"] == OFFLINE
        assert body["client_id"] == web_client.client_id
        assert body["sub"] == str(user.id)
        assert body["iss"] == ISSUER
        assert body["exp"] > body["iat"] > time.time() - 60


def test_wrong_hint_still_finds_the_token(obtain_tokens, web_client, introspect):
    """RFC 7662 §2.1: if the token cannot be found with the hint, the server MUST extend its search."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    assert introspect(web_client, tokens["access_token"], token_type_hint="refresh_token")["active"] is True
    assert introspect(web_client, tokens["refresh_token"], token_type_hint="access_token")["active"] is True


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_unknown_hint_is_ignored(obtain_tokens, web_client, introspect, kind):
    """RFC 7662 §2.1: the server MAY ignore token_type_hint and MUST extend its search to all its token
    types; an unknown hint is no error (§2.3 defines none for it)."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    body = introspect(web_client, tokens[kind], token_type_hint="id_token")
    assert body["active"] is True
    assert body["client_id"] == web_client.client_id


def test_unknown_token_with_an_unknown_hint_is_inactive(web_client, introspect):
    """RFC 7662 §2.1 and §2.2: with an unknown hint, an unknown token is still just {"active": false}."""
    assert introspect(web_client, "no-such-token", token_type_hint="id_token") == {"active": False}


@pytest.mark.parametrize("grace", [
    pytest.param(seconds, marks=pytest.mark.settings(REFRESH_REUSE_GRACE_SECONDS=seconds)) for seconds in (0, 30)
], ids=["no-grace-window", "in-grace-window"])
def test_rotated_refresh_token_is_inactive(obtain_tokens, web_client, introspect, token_request, grace):
    """RFC 7662 §2.2 and RFC 9700 §4.14.2: a rotated refresh token is no longer active, even while
    the grace window (REFRESH_REUSE_GRACE_SECONDS) would still accept it once more."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    rotated = token_request(web_client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert rotated.status_code == 200
    assert introspect(web_client, tokens["refresh_token"]) == {"active": False}


@pytest.mark.settings(ACCESS_TOKEN_LIFETIME=0)
def test_expired_access_token_is_inactive(obtain_tokens, web_client, introspect):
    """RFC 7662 §2.2: an expired token is not active, and nothing else is disclosed."""
    tokens = obtain_tokens(web_client, scope="openid")
    assert introspect(web_client, tokens["access_token"]) == {"active": False}


@pytest.mark.settings(REFRESH_TOKEN_LIFETIME=0)
def test_expired_refresh_token_is_inactive(obtain_tokens, web_client, introspect):
    """RFC 7662 §2.2: an expired refresh token is not active."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    assert introspect(web_client, tokens["refresh_token"]) == {"active": False}


def test_revoked_tokens_are_inactive(obtain_tokens, web_client, introspect, client):
    """RFC 7662 §2.2 and RFC 7009 §2: revoked access and refresh tokens are not active."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert client.post("/oauth2/revoke", **web_client.authenticate({"token": token})).status_code == 200
        assert introspect(web_client, token) == {"active": False}


@pytest.mark.parametrize("token", ["unknown", "a.b.c", ""], ids=["unknown", "malformed-jwt", "empty"])
def test_unknown_token_is_inactive(web_client, introspect, token):
    """RFC 7662 §2.2: a token the server does not know is {"active": false}."""
    assert introspect(web_client, token) == {"active": False}


def test_missing_token_parameter_is_invalid_request(web_client, client):
    """RFC 7662 §2.1 (token REQUIRED) and RFC 6749 §5.2."""
    response = client.post("/oauth2/introspect", **web_client.authenticate({}))
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_token_of_another_client_is_inactive(obtain_tokens, web_client, register, introspect):
    """RFC 7662 §2.2 and §4: a client learns nothing about tokens that were not issued to it or for it."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    other = register(name="Other", redirect_uris=["https://other.example.com/cb"])
    assert introspect(other, tokens["access_token"]) == {"active": False}
    assert introspect(other, tokens["refresh_token"]) == {"active": False}


def test_client_credentials_token_is_introspectable(token_request, machine_client, introspect):
    """RFC 7662 §2.2: sub of a client-credentials token is the client (RFC 9068 §2.2)."""
    token = token_request(machine_client, grant_type="client_credentials").get_json()["access_token"]
    body = introspect(machine_client, token)
    assert body["active"] is True
    assert body["sub"] == machine_client.client_id
    assert body["scope"] == "invoices:read invoices:write"


def test_resource_server_named_in_aud_may_introspect(app, register, web_client, user, introspect):
    """RFC 7662 §2.1 and §4: a protected resource for which the token is intended (named in aud,
    RFC 9068 §3) may introspect it. Tokens always carry the client as aud (no RFC 8707 resource
    indicators yet), so this token is minted with the server's own key, as the token endpoint would."""
    resource_server = register(name="Invoices API", grant_types=["client_credentials"], scopes=["invoices:read"])
    bystander = register(name="Other API", grant_types=["client_credentials"], scopes=["reports:read"])
    signing = app.extensions["gatehouse.keys"].signing_key("RS256")
    now = int(time.time())
    token = jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": signing.kid},
                       {"iss": ISSUER, "sub": str(user.id), "aud": [web_client.client_id, resource_server.client_id],
                        "client_id": web_client.client_id, "scope": "openid", "iat": now, "exp": now + 300,
                        "jti": secrets.token_urlsafe(16)}, one_key_keyset(signing))
    body = introspect(resource_server, token)
    assert body["active"] is True
    assert body["client_id"] == web_client.client_id
    assert introspect(web_client, token)["active"] is True
    assert introspect(bystander, token) == {"active": False}
