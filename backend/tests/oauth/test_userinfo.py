"""/oauth2/userinfo (OIDC Core §5.3) and its bearer-token errors (RFC 6750 §3)."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from app.models import User
from tests.oauth.helpers import ISSUER, verify_jwt


def assert_invalid_token(response) -> None:
    """RFC 6750 §3 and §3.1: 401 with a Bearer challenge carrying error="invalid_token"."""
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert response.get_json()["error"] == "invalid_token"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_returns_claims_for_the_token(obtain_tokens, web_client, bearer, user, method):
    """OIDC Core §5.3.1 (GET and POST with a Bearer token) and §5.3.2 (sub plus the scope's claims, JSON)."""
    tokens = obtain_tokens(web_client, scope="openid profile email")
    response = bearer("/oauth2/userinfo", tokens["access_token"], method=method)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    claims = response.get_json()
    assert claims == {"sub": str(user.id), "name": user.name, "updated_at": int(user.updated_at.timestamp()),
                      "email": user.email, "email_verified": True}


def test_userinfo_sub_matches_the_id_token(obtain_tokens, web_client, bearer, client):
    """OIDC Core §5.3.2: the sub in the UserInfo response MUST match the sub in the ID Token."""
    tokens = obtain_tokens(web_client, scope="openid")
    id_sub = verify_jwt(client, tokens["id_token"]).claims["sub"]
    assert bearer("/oauth2/userinfo", tokens["access_token"]).get_json()["sub"] == id_sub


@pytest.mark.parametrize(("scope", "claims"), [
    ("openid", {"sub"}),
    ("openid profile", {"sub", "name", "updated_at"}),
    ("openid email", {"sub", "email", "email_verified"}),
    ("openid profile email", {"sub", "name", "updated_at", "email", "email_verified"}),
])
def test_claims_follow_the_scopes(obtain_tokens, web_client, bearer, scope, claims):
    """OIDC Core §5.4: profile → name, updated_at; email → email, email_verified; nothing else unasked."""
    tokens = obtain_tokens(web_client, scope=scope)
    assert set(bearer("/oauth2/userinfo", tokens["access_token"]).get_json()) == claims


def test_missing_token_gets_a_bare_bearer_challenge(client):
    """RFC 6750 §3 and §3.1: without credentials, 401 with WWW-Authenticate: Bearer and no error code."""
    response = client.get("/oauth2/userinfo")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.split()[0] == "Bearer"
    assert "error=" not in challenge


def test_other_authorization_scheme_gets_a_bearer_challenge(client):
    """RFC 6750 §3: a request that does not use the Bearer scheme is answered with a Bearer challenge."""
    response = client.get("/oauth2/userinfo", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].split()[0] == "Bearer"
    # §3: error_description is printable ASCII without '"' or '\\'.
    description = response.get_json()["error_description"]
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."],
                         ids=["garbage", "not-base64", "alg-none"])
def test_garbage_token_is_invalid_token(bearer, token):
    """RFC 6750 §3.1: invalid_token for a malformed token (and an unsigned one, RFC 8725 §3.1)."""
    assert_invalid_token(bearer("/oauth2/userinfo", token))


@pytest.mark.settings(ACCESS_TOKEN_LIFETIME=0)
def test_expired_token_is_invalid_token(obtain_tokens, web_client, bearer):
    """RFC 6750 §3.1: invalid_token for an expired token (RFC 9068 §4: exp is checked)."""
    tokens = obtain_tokens(web_client, scope="openid profile")
    assert_invalid_token(bearer("/oauth2/userinfo", tokens["access_token"]))


def test_revoked_token_is_invalid_token(obtain_tokens, web_client, bearer, client):
    """RFC 6750 §3.1 and RFC 7009 §2: a revoked access token is rejected."""
    tokens = obtain_tokens(web_client, scope="openid profile")
    revoked = client.post("/oauth2/revoke", **web_client.authenticate({"token": tokens["access_token"]}))
    assert revoked.status_code == 200
    assert_invalid_token(bearer("/oauth2/userinfo", tokens["access_token"]))


def test_client_credentials_token_is_invalid_token(token_request, machine_client, bearer):
    """OIDC Core §5.3 / RFC 6750 §3.1: a token issued without an end-user identifies no one to describe."""
    token = token_request(machine_client, grant_type="client_credentials").get_json()["access_token"]
    assert_invalid_token(bearer("/oauth2/userinfo", token))


def test_id_token_is_not_an_access_token(obtain_tokens, web_client, bearer):
    """RFC 9068 §4 (typ at+jwt is checked) and RFC 8725 §3.11: an id_token, though signed by the same
    key, is not accepted as an access token."""
    tokens = obtain_tokens(web_client, scope="openid profile")
    assert_invalid_token(bearer("/oauth2/userinfo", tokens["id_token"]))


def test_token_signed_by_another_key_is_invalid_token(obtain_tokens, web_client, bearer, client, user):
    """RFC 9068 §4: the signature must verify with the issuer's published keys."""
    foreign = RSAKey.generate_key(2048, parameters={"kid": "attacker"})
    now = int(time.time())
    forged = jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": "attacker"},
                        {"iss": ISSUER, "sub": str(user.id), "aud": web_client.client_id,
                         "client_id": web_client.client_id, "scope": "openid profile", "iat": now,
                         "exp": now + 600, "jti": "forged"}, foreign)
    assert_invalid_token(bearer("/oauth2/userinfo", forged))


def test_token_of_a_suspended_user_is_invalid_token(obtain_tokens, web_client, bearer, user, db_session):
    """OIDC Core §5.3.3 / RFC 6750 §3.1: the token no longer describes an active end-user."""
    tokens = obtain_tokens(web_client, scope="openid profile")
    db_session.get(User, user.id).status = "suspended"
    db_session.commit()
    assert_invalid_token(bearer("/oauth2/userinfo", tokens["access_token"]))


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_token_without_openid_is_insufficient_scope_with_a_challenge(obtain_tokens, web_client, bearer, method):
    """OIDC Core §5.3 (UserInfo needs openid) and §5.3.3, RFC 6750 §3 and §3.1: 403 insufficient_scope,
    with a Bearer challenge that carries the error and names the scope required."""
    tokens = obtain_tokens(web_client, scope="profile email")
    response = bearer("/oauth2/userinfo", tokens["access_token"], method=method)
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.split()[0] == "Bearer"
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="openid"' in challenge
