"""/oauth2/token with grant_type=authorization_code: the response, the tokens, and every way to fail."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from joserfc import jwt
from sqlalchemy import select

from app.models import AuthorizationCode, RefreshToken, User, UserSession
from app.security.tokens import hash_token
from tests.oauth.helpers import (
    ISSUER,
    WEB_OTHER_REDIRECT_URI,
    WEB_REDIRECT_URI,
    audit_events,
    half_hash,
    jwks,
    verify_jwt,
)

ID_TOKEN_REGISTRY_OPTIONS = {k: {"essential": True} for k in ("iss", "sub", "aud", "exp", "iat", "auth_time")}


def assert_oauth_error(response, status: int, error: str) -> dict:
    """RFC 6749 §5.2: a JSON error body with the status code the RFC requires, never cached."""
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == error, body
    assert "access_token" not in body
    assert_no_store(response)
    return body


def assert_no_store(response) -> None:
    """RFC 6749 §5.1: Cache-Control no-store and Pragma no-cache on token responses."""
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def code_form(redirect, **overrides):
    """The form of a code exchange for `redirect` (RFC 6749 §4.1.3); None drops a parameter."""
    form = {"grant_type": "authorization_code", "code": redirect.code, "redirect_uri": redirect.redirect_uri,
            "code_verifier": redirect.pkce.verifier}
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


# --- success ------------------------------------------------------------------------

def test_code_exchange_returns_the_token_response(authorize, exchange, web_client, db_session, user):
    """RFC 6749 §4.1.4 and §5.1: access_token, token_type, expires_in, refresh_token, scope;
    OIDC Core §3.1.3.3: id_token; never cached."""
    redirect = authorize(web_client, scope="openid profile email offline_access")
    response = exchange(redirect)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert_no_store(response)
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "openid profile email offline_access"

    code = db_session.scalar(select(AuthorizationCode))
    assert code.code_hash == hash_token(redirect.code)  # stored hashed
    assert code.redeemed_at is not None
    refresh = db_session.scalar(select(RefreshToken))
    assert refresh.token_hash == hash_token(body["refresh_token"])
    assert refresh.family_id == code.family_id
    assert refresh.user_id == user.id


def test_access_token_is_an_rfc9068_jwt(obtain_tokens, web_client, user, client):
    """RFC 9068 §2.1 (typ at+jwt, signed, kid) and §2.2 (iss, sub, aud, client_id, scope, exp, iat, jti)."""
    tokens = obtain_tokens(web_client, scope="openid email")
    token = verify_jwt(client, tokens["access_token"])
    assert token.header["typ"] == "at+jwt"
    assert token.header["alg"] == "RS256"
    assert token.header["kid"]
    claims = token.claims
    assert claims["iss"] == ISSUER
    assert claims["sub"] == str(user.id)
    assert claims["aud"] == web_client.client_id
    assert claims["client_id"] == web_client.client_id
    assert claims["scope"] == "openid email"
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 60


def test_access_token_jtis_are_unique(obtain_tokens, web_client, client):
    """RFC 9068 §2.2 / RFC 7519 §4.1.7: jti is unique per token."""
    first = verify_jwt(client, obtain_tokens(web_client)["access_token"]).claims["jti"]
    second = verify_jwt(client, obtain_tokens(web_client)["access_token"]).claims["jti"]
    assert first != second


def test_id_token_is_verified_against_the_jwks(authorize, exchange, web_client, user, client, db_session):
    """OIDC Core §2 (iss, sub, aud, exp, iat, auth_time, nonce), §3.1.3.7 (validation against the
    published keys) and §3.1.3.6 (at_hash = left half of SHA-256 of the access token)."""
    redirect = authorize(web_client, nonce="n-0S6_WzA2Mj")
    body = exchange(redirect).get_json()
    token = jwt.decode(body["id_token"], jwks(client), algorithms=["RS256"])
    jwt.JWTClaimsRegistry(now=int(time.time()), **ID_TOKEN_REGISTRY_OPTIONS).validate(token.claims)
    claims = token.claims
    assert token.header["alg"] == "RS256"
    assert claims["iss"] == ISSUER
    assert claims["sub"] == str(user.id)
    assert claims["aud"] == web_client.client_id
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["exp"] > claims["iat"]
    assert claims["at_hash"] == half_hash(body["access_token"])
    signed_in_at = db_session.scalar(select(UserSession).where(UserSession.user_id == user.id)).created_at
    assert claims["auth_time"] == int(signed_in_at.timestamp())
    assert claims["amr"] == ["pwd"]
    # profile and email scopes add their claims (OIDC Core §5.4).
    assert claims["email"] == user.email
    assert claims["name"] == user.name


def test_id_token_is_es256_for_a_client_registered_with_it(register, obtain_tokens, client):
    """OIDC Core §3.1.3.7 item 7 / OIDC Registration §2 (id_token_signed_response_alg): ES256,
    and at_hash uses SHA-256 for ES256 (§3.1.3.6)."""
    es = register(redirect_uris=["https://es.example.com/cb"], first_party=True, id_token_signed_response_alg="ES256")
    tokens = obtain_tokens(es)
    token = jwt.decode(tokens["id_token"], jwks(client), algorithms=["ES256"])
    assert token.header["alg"] == "ES256"
    published = {k["kid"]: k for k in client.get("/oauth2/jwks").get_json()["keys"]}
    assert published[token.header["kid"]]["kty"] == "EC"
    assert token.claims["at_hash"] == half_hash(tokens["access_token"])
    assert token.claims["aud"] == es.client_id


def test_no_id_token_without_openid_scope(obtain_tokens, web_client):
    """OIDC Core §3.1.2.1: without the openid scope the request is plain OAuth 2.0; no id_token."""
    tokens = obtain_tokens(web_client, scope="profile")
    assert "id_token" not in tokens
    assert tokens["scope"] == "profile"


def test_public_client_with_auth_method_none_and_pkce(authorize, exchange, spa_client, client):
    """RFC 6749 §2.1 / §3.2.1 (public clients send client_id only) and RFC 7636 §4.5–§4.6 (PKCE)."""
    response = exchange(authorize(spa_client, scope="openid offline_access"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["refresh_token"]
    assert verify_jwt(client, body["access_token"]).claims["client_id"] == spa_client.client_id


def test_client_secret_post_client_authenticates_in_the_body(register, authorize, exchange):
    """RFC 6749 §2.3.1: client_secret_post sends the credentials in the request body."""
    post_client = register(redirect_uris=["https://post.example.com/cb"],
                           token_endpoint_auth_method="client_secret_post")
    assert exchange(authorize(post_client)).status_code == 200


def test_client_secret_post_client_cannot_use_basic(register, authorize, token_request, db_session):
    """OIDC Core §9 / RFC 7591 §2: a client authenticates with the method it registered;
    RFC 6749 §5.2: a failed Basic authentication is 401 with a Basic challenge."""
    post_client = register(redirect_uris=["https://post.example.com/cb"],
                           token_endpoint_auth_method="client_secret_post")
    redirect = authorize(post_client)
    response = token_request(replace(post_client, auth_method="client_secret_basic"), **code_form(redirect))
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert db_session.scalar(select(AuthorizationCode)).redeemed_at is None


def test_client_secret_basic_client_cannot_use_post(authorize, token_request, web_client, db_session):
    """OIDC Core §9 / RFC 7591 §2: a client registered for client_secret_basic may not send its secret in the body."""
    redirect = authorize(web_client)
    response = token_request(replace(web_client, auth_method="client_secret_post"), **code_form(redirect))
    assert_oauth_error(response, 401, "invalid_client")
    assert db_session.scalar(select(AuthorizationCode)).redeemed_at is None


def test_bad_client_secret_with_basic_is_401_with_a_challenge(authorize, token_request, web_client, db_session):
    """RFC 6749 §5.2 (invalid_client): with the Authorization header, 401 and a WWW-Authenticate
    challenge for the scheme used."""
    redirect = authorize(web_client)
    response = token_request(replace(web_client, secret="wrong-secret"), **code_form(redirect))
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert 'error="invalid_client"' in response.headers["WWW-Authenticate"]
    assert db_session.scalar(select(AuthorizationCode)).redeemed_at is None


def test_unknown_client_with_basic_is_401(authorize, token_request, web_client):
    """RFC 6749 §5.2 (invalid_client: unknown client)."""
    redirect = authorize(web_client)
    response = token_request(replace(web_client, client_id="nobody"), **code_form(redirect))
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_confidential_client_without_credentials_is_rejected(authorize, token_request, web_client, db_session):
    """RFC 6749 §3.2.1 and §4.1.3: a confidential client MUST authenticate; client_id alone is not enough."""
    redirect = authorize(web_client)
    response = token_request(replace(web_client, auth_method="none"), **code_form(redirect))
    assert_oauth_error(response, 401, "invalid_client")
    assert db_session.scalar(select(AuthorizationCode)).redeemed_at is None


def test_public_client_sending_a_secret_is_rejected(authorize, token_request, spa_client):
    """RFC 6749 §2.3: a public client has no secret; a request claiming one does not authenticate it."""
    redirect = authorize(spa_client)
    response = token_request(replace(spa_client, auth_method="client_secret_post", secret="made-up"),
                             **code_form(redirect))
    assert_oauth_error(response, 401, "invalid_client")


# --- failures of the grant itself ---------------------------------------------------------

def test_wrong_code_verifier_is_invalid_grant(authorize, token_request, web_client, pkce, db_session):
    """RFC 7636 §4.6: a verifier that does not match the challenge is invalid_grant."""
    redirect = authorize(web_client)
    response = token_request(web_client, **code_form(redirect, code_verifier=pkce().verifier))
    assert_oauth_error(response, 400, "invalid_grant")
    assert_no_store(response)
    assert db_session.scalar(select(RefreshToken)) is None


def test_missing_code_verifier_is_invalid_request(authorize, token_request, spa_client, db_session):
    """RFC 7636 §4.5 / §4.6: the verifier is required when a challenge was sent; invalid_request (RFC 6749 §5.2)."""
    redirect = authorize(spa_client)
    response = token_request(spa_client, **code_form(redirect, code_verifier=None))
    assert_oauth_error(response, 400, "invalid_request")
    assert db_session.scalar(select(AuthorizationCode)).redeemed_at is None


@pytest.mark.parametrize("redirect_uri", [WEB_OTHER_REDIRECT_URI, WEB_REDIRECT_URI + "/", None],
                         ids=["other-registered", "altered", "missing"])
def test_redirect_uri_mismatch_is_invalid_grant(authorize, token_request, web_client, redirect_uri, db_session):
    """RFC 6749 §4.1.3: redirect_uri is REQUIRED when the authorization request had one, and identical."""
    redirect = authorize(web_client)
    response = token_request(web_client, **code_form(redirect, redirect_uri=redirect_uri))
    assert_oauth_error(response, 400, "invalid_grant")
    assert db_session.scalar(select(AuthorizationCode)).redeemed_at is None


def test_code_of_another_client_is_invalid_grant(authorize, token_request, web_client, register, db_session):
    """RFC 6749 §4.1.3: the code must have been issued to the authenticated client."""
    redirect = authorize(web_client)
    other = register(name="Other", redirect_uris=[WEB_REDIRECT_URI])
    response = token_request(other, **code_form(redirect))
    assert_oauth_error(response, 400, "invalid_grant")
    # The rightful client can still redeem it.
    assert token_request(web_client, **code_form(redirect)).status_code == 200


def test_unknown_code_is_invalid_grant(token_request, web_client, pkce):
    """RFC 6749 §5.2 (invalid_grant: the code is invalid)."""
    response = token_request(web_client, grant_type="authorization_code", code="not-a-code",
                             redirect_uri=WEB_REDIRECT_URI, code_verifier=pkce().verifier)
    assert_oauth_error(response, 400, "invalid_grant")


def test_missing_code_is_invalid_request(token_request, web_client):
    """RFC 6749 §4.1.3 (code REQUIRED) and §5.2 (invalid_request)."""
    response = token_request(web_client, grant_type="authorization_code", redirect_uri=WEB_REDIRECT_URI)
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.settings(AUTHORIZATION_CODE_LIFETIME=0)
def test_expired_code_is_invalid_grant(authorize, exchange, web_client, db_session):
    """RFC 6749 §4.1.2 (codes expire shortly after issue) and §5.2 (invalid_grant: expired)."""
    response = exchange(authorize(web_client))
    assert_oauth_error(response, 400, "invalid_grant")
    assert db_session.scalar(select(RefreshToken)) is None


def test_unsupported_grant_type(token_request, web_client):
    """RFC 6749 §5.2: unsupported_grant_type (the password and implicit grants are not offered, RFC 9700 §2.4)."""
    response = token_request(web_client, grant_type="password", username="a", password="b")
    assert_oauth_error(response, 400, "unsupported_grant_type")


def test_client_without_the_grant_is_unauthorized_client(token_request, machine_client):
    """RFC 6749 §5.2: unauthorized_client for a grant type the client was not registered for."""
    response = token_request(machine_client, grant_type="authorization_code", code="whatever",
                             redirect_uri="https://x.example.com/cb")
    assert_oauth_error(response, 400, "unauthorized_client")


# --- code replay ---------------------------------------------------------------------------

def test_second_use_of_a_code_revokes_what_the_first_issued(authorize, exchange, web_client, bearer, introspect,
                                                            token_request, db_session):
    """RFC 6749 §4.1.2 and §10.5, RFC 9700 §4.5.3: a code used twice is refused, and the tokens issued
    for it are revoked: the access token fails at userinfo (RFC 6750 §3.1) and introspection
    (RFC 7662 §2.2), and the refresh token no longer works. The attempt is audited."""
    redirect = authorize(web_client, scope="openid profile offline_access")
    first = exchange(redirect).get_json()
    assert bearer("/oauth2/userinfo", first["access_token"]).status_code == 200

    replay = exchange(redirect)
    assert_oauth_error(replay, 400, "invalid_grant")

    userinfo = bearer("/oauth2/userinfo", first["access_token"])
    assert userinfo.status_code == 401
    assert 'error="invalid_token"' in userinfo.headers["WWW-Authenticate"]
    assert introspect(web_client, first["access_token"]) == {"active": False}
    assert introspect(web_client, first["refresh_token"]) == {"active": False}
    refreshed = token_request(web_client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert_oauth_error(refreshed, 400, "invalid_grant")

    assert db_session.scalar(select(RefreshToken)).revoked_at is not None
    events = audit_events(db_session, "oauth.code_reused")
    assert len(events) == 1
    assert events[0].result == "failure"
    assert events[0].target_id == web_client.client_id
    assert events[0].details["refresh_tokens_revoked"] == 1


def test_second_use_without_refresh_token_still_denies_the_access_token(authorize, exchange, web_client, bearer,
                                                                        db_session):
    """RFC 6749 §4.1.2: the access token alone is revoked too when no refresh token was issued."""
    redirect = authorize(web_client, scope="openid profile")
    first = exchange(redirect).get_json()
    assert "refresh_token" not in first
    assert_oauth_error(exchange(redirect), 400, "invalid_grant")
    assert bearer("/oauth2/userinfo", first["access_token"]).status_code == 401
    assert len(audit_events(db_session, "oauth.code_reused")) == 1


def test_code_of_a_suspended_user_is_invalid_grant(authorize, exchange, web_client, user, db_session):
    """RFC 6749 §5.2 (invalid_grant: the grant is no longer valid): a suspended user gets no tokens."""
    redirect = authorize(web_client)
    db_session.get(User, user.id).status = "suspended"
    db_session.commit()
    assert_oauth_error(exchange(redirect), 400, "invalid_grant")
