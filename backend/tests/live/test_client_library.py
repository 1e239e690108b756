"""A real OAuth client library against the live server.

Authlib's requests client (OAuth2Session) speaks to Gatehouse over HTTP on a
loopback port, exactly as a relying party would: it builds the authorization
URL with PKCE, redeems the code, refreshes, uses client credentials,
introspects and revokes. The id_token and access tokens are verified with
joserfc against the keys the server publishes at its jwks_uri, found through
the discovery document. The sign-in and consent pages are answered by a
requests.Session posting their forms (tests/live/flows.py); test_browser.py
drives the same pages in Chromium.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

from tests.live import flows
from tests.live.conftest import LiveClient, LiveUser
from tests.live.relying_party import (TIMEOUT, Provider, capture_token_responses, discover, oauth_session,
                                      verify_access_token, verify_id_token)


@pytest.fixture
def provider(live_server: str) -> Provider:
    return discover(live_server)


# --- the authorization code flow, as the client library runs it ---

@dataclass
class CodeFlow:
    session: OAuth2Session
    callback_url: str
    callback: dict[str, str]
    code_verifier: str
    nonce: str
    state: str


def authorize(provider: Provider, client: LiveClient, user: LiveUser, *, decision: str = "allow") -> CodeFlow:
    """Build the authorization URL with the library (PKCE S256, state, nonce), walk the pages, and
    return where the server sent the browser back to."""
    session = oauth_session(client)
    code_verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = session.create_authorization_url(provider["authorization_endpoint"], code_verifier=code_verifier,
                                                  nonce=nonce)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    with requests.Session() as browser:
        callback_url = flows.authorize(browser, url, email=user.email, password=user.password, decision=decision)
    assert callback_url.startswith(client.redirect_uri + "?"), callback_url
    callback = {k: v[0] for k, v in parse_qs(urlsplit(callback_url).query).items()}
    return CodeFlow(session, callback_url, callback, code_verifier, nonce, state)


def redeem(provider: Provider, flow: CodeFlow) -> dict[str, Any]:
    return flow.session.fetch_token(provider["token_endpoint"], authorization_response=flow.callback_url,
                                    code_verifier=flow.code_verifier)


# --- the tests ---

def test_discovery_names_the_live_issuer_and_its_endpoints(provider: Provider):
    """OIDC Discovery 1.0 §4.3 / RFC 8414 §3.3: `issuer` is exactly the URL the metadata was fetched under,
    and every endpoint a client library needs is advertised under it."""
    assert provider["issuer"] == provider.issuer
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "introspection_endpoint", "revocation_endpoint", "end_session_endpoint"):
        assert provider[name].startswith(provider.issuer + "/"), name
    assert "S256" in provider["code_challenge_methods_supported"]
    assert provider["authorization_response_iss_parameter_supported"] is True
    assert all(key.kid for key in provider.keys.keys)


def test_authorization_code_with_pkce_issues_tokens_and_a_verifiable_id_token(
        provider: Provider, web_client: LiveClient, live_user: LiveUser):
    """RFC 6749 §4.1 with RFC 7636 §4 (S256) for a confidential client; RFC 9207 §2 `iss` in the
    authorization response; OIDC Core §3.1.3.7 id_token validation (iss, aud, nonce, at_hash) against the
    JWKS (RFC 7517); RFC 6749 §5.1 Cache-Control: no-store; RFC 9068 JWT access token."""
    flow = authorize(provider, web_client, live_user)
    assert flow.callback["state"] == flow.state
    assert flow.callback["iss"] == provider["issuer"]
    assert "code" in flow.callback and "error" not in flow.callback

    responses = capture_token_responses(flow.session)
    token = redeem(provider, flow)

    assert responses[-1].status_code == 200
    assert "no-store" in responses[-1].headers["Cache-Control"]
    assert token["token_type"].lower() == "bearer"
    assert isinstance(token["expires_in"], int) and token["expires_in"] > 0
    assert set(token["scope"].split()) == set(web_client.scopes)
    assert token["refresh_token"]  # offline_access was granted

    claims = verify_id_token(provider, token["id_token"], client_id=web_client.client_id, nonce=flow.nonce,
                             access_token=token["access_token"])
    assert claims["sub"] == live_user.id
    assert claims["auth_time"] <= time.time()

    access = verify_access_token(provider, token["access_token"], client_id=web_client.client_id)
    assert access["sub"] == live_user.id
    assert set(access["scope"].split()) == set(web_client.scopes)


def test_code_is_single_use(provider: Provider, web_client: LiveClient, live_user: LiveUser):
    """RFC 6749 §4.1.2 and §10.5: an authorization code may be redeemed once; a second attempt is
    invalid_grant (§5.2)."""
    flow = authorize(provider, web_client, live_user)
    redeem(provider, flow)
    with pytest.raises(OAuthError) as replay:
        redeem(provider, flow)
    assert replay.value.error == "invalid_grant"


def test_public_client_redeems_with_pkce_and_no_secret(provider: Provider, spa_client: LiveClient,
                                                       live_user: LiveUser):
    """RFC 7636 §4.5-§4.6 for a public client (RFC 6749 §2.1, token_endpoint_auth_method none): the code
    is redeemed with the code_verifier alone; a wrong verifier is invalid_grant."""
    wrong = authorize(provider, spa_client, live_user)
    with pytest.raises(OAuthError) as mismatch:
        wrong.session.fetch_token(provider["token_endpoint"], authorization_response=wrong.callback_url,
                                  code_verifier=secrets.token_urlsafe(48))
    assert mismatch.value.error == "invalid_grant"

    flow = authorize(provider, spa_client, live_user)  # consent is remembered: straight back with a code
    token = redeem(provider, flow)
    verify_id_token(provider, token["id_token"], client_id=spa_client.client_id, nonce=flow.nonce,
                    access_token=token["access_token"])
    assert verify_access_token(provider, token["access_token"], client_id=spa_client.client_id)["sub"] == \
        live_user.id


def test_denied_consent_returns_access_denied(provider: Provider, web_client: LiveClient, live_user: LiveUser):
    """RFC 6749 §4.1.2.1: when the resource owner denies the request the client gets error=access_denied
    with its state (and iss, RFC 9207 §2)."""
    flow = authorize(provider, web_client, live_user, decision="deny")
    assert flow.callback["error"] == "access_denied"
    assert flow.callback["state"] == flow.state
    assert flow.callback["iss"] == provider["issuer"]
    assert "code" not in flow.callback


def test_refresh_rotates_and_reuse_revokes_the_family(provider: Provider, spa_client: LiveClient,
                                                      live_user: LiveUser):
    """RFC 6749 §6 refresh with the library's refresh_token(); RFC 9700 §4.14.2: the refresh token is
    rotated on use, and presenting a rotated one again revokes the whole family (invalid_grant)."""
    flow = authorize(provider, spa_client, live_user)
    first = dict(redeem(provider, flow))

    responses = capture_token_responses(flow.session)
    second = dict(flow.session.refresh_token(provider["token_endpoint"]))
    assert "no-store" in responses[-1].headers["Cache-Control"]
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    claims = verify_access_token(provider, second["access_token"], client_id=spa_client.client_id)
    assert claims["sub"] == live_user.id

    with pytest.raises(OAuthError) as reuse:
        flow.session.refresh_token(provider["token_endpoint"], refresh_token=first["refresh_token"])
    assert reuse.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as family:
        flow.session.refresh_token(provider["token_endpoint"], refresh_token=second["refresh_token"])
    assert family.value.error == "invalid_grant"


def test_client_credentials_for_a_machine_client(provider: Provider, machine_client: LiveClient):
    """RFC 6749 §4.4: client credentials with client_secret_basic (§2.3.1); no refresh token (§4.4.3);
    the access token is an RFC 9068 JWT whose sub is the client (§2.2). A wrong secret is 401
    invalid_client (§5.2)."""
    session = oauth_session(machine_client, scope="invoices:read")
    responses = capture_token_responses(session)
    token = session.fetch_token(provider["token_endpoint"], grant_type="client_credentials")
    assert "no-store" in responses[-1].headers["Cache-Control"]
    assert token["token_type"].lower() == "bearer"
    assert "refresh_token" not in token and "id_token" not in token
    claims = verify_access_token(provider, token["access_token"], client_id=machine_client.client_id)
    assert claims["sub"] == machine_client.client_id
    assert claims["scope"] == "invoices:read"

    impostor = OAuth2Session(machine_client.client_id, "not-the-secret", timeout=TIMEOUT)
    responses = capture_token_responses(impostor)
    with pytest.raises(OAuthError) as bad:
        impostor.fetch_token(provider["token_endpoint"], grant_type="client_credentials")
    assert bad.value.error == "invalid_client"
    assert responses[-1].status_code == 401
    assert responses[-1].headers["WWW-Authenticate"].lower().startswith("basic")


def test_introspection(provider: Provider, web_client: LiveClient, machine_client: LiveClient,
                       live_user: LiveUser):
    """RFC 7662 §2.1-§2.2: the client that holds a token learns it is active with its scope, client_id,
    sub, exp; a token it did not get, or an unknown string, is just {"active": false}."""
    flow = authorize(provider, web_client, live_user)
    token = redeem(provider, flow)
    endpoint = provider["introspection_endpoint"]

    response = flow.session.introspect_token(endpoint, token=token["access_token"], token_type_hint="access_token")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["active"] is True
    assert body["client_id"] == web_client.client_id and body["sub"] == live_user.id
    assert set(body["scope"].split()) == set(web_client.scopes)
    assert body["iss"] == provider["issuer"] and body["exp"] > time.time()

    # A wrong hint must still find the token (§2.1).
    refresh = flow.session.introspect_token(endpoint, token=token["refresh_token"], token_type_hint="access_token")
    assert refresh.json()["active"] is True and refresh.json()["client_id"] == web_client.client_id

    other = oauth_session(machine_client).introspect_token(endpoint, token=token["access_token"])
    assert other.status_code == 200 and other.json() == {"active": False}
    unknown = flow.session.introspect_token(endpoint, token="no-such-token")
    assert unknown.status_code == 200 and unknown.json() == {"active": False}

    anonymous = requests.post(endpoint, data={"token": token["access_token"]}, timeout=TIMEOUT)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"


def test_revocation(provider: Provider, web_client: LiveClient, spa_client: LiveClient, live_user: LiveUser):
    """RFC 7009 §2.1-§2.2: revoking an access token makes introspection report it inactive (RFC 7662 §2.2)
    and the resource reject it (RFC 6750 §3.1); revoking a refresh token ends the grant, so refreshing is
    invalid_grant. A public client revokes with its client_id alone. Unknown tokens still get 200."""
    flow = authorize(provider, web_client, live_user)
    token = redeem(provider, flow)
    endpoint = provider["revocation_endpoint"]

    revoked = flow.session.revoke_token(endpoint, token=token["access_token"], token_type_hint="access_token")
    assert revoked.status_code == 200, revoked.text
    assert flow.session.introspect_token(provider["introspection_endpoint"],
                                         token=token["access_token"]).json() == {"active": False}
    userinfo = requests.get(provider["userinfo_endpoint"], timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {token['access_token']}"})
    assert userinfo.status_code == 401
    assert 'error="invalid_token"' in userinfo.headers["WWW-Authenticate"]

    assert flow.session.revoke_token(endpoint, token=token["refresh_token"]).status_code == 200
    with pytest.raises(OAuthError) as refresh:
        flow.session.refresh_token(provider["token_endpoint"], refresh_token=token["refresh_token"])
    assert refresh.value.error == "invalid_grant"

    assert flow.session.revoke_token(endpoint, token="no-such-token").status_code == 200

    spa = authorize(provider, spa_client, live_user)
    spa_token = redeem(provider, spa)
    assert spa.session.revoke_token(endpoint, token=spa_token["refresh_token"]).status_code == 200
    with pytest.raises(OAuthError) as spa_refresh:
        spa.session.refresh_token(provider["token_endpoint"], refresh_token=spa_token["refresh_token"])
    assert spa_refresh.value.error == "invalid_grant"


def test_userinfo_with_the_access_token(provider: Provider, web_client: LiveClient, live_user: LiveUser):
    """OIDC Core §5.3: UserInfo answers a bearer token (RFC 6750 §2.1) with claims whose sub matches the
    id_token's (§5.3.2) and the profile and email claims the scopes granted (§5.4); without a Bearer token
    it is 401 with a bare Bearer challenge, no error code (RFC 6750 §3, §3.1)."""
    flow = authorize(provider, web_client, live_user)
    token = redeem(provider, flow)
    id_claims = verify_id_token(provider, token["id_token"], client_id=web_client.client_id, nonce=flow.nonce,
                                access_token=token["access_token"])

    response = flow.session.get(provider["userinfo_endpoint"])
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["sub"] == id_claims["sub"] == live_user.id
    assert info["email"] == live_user.email and info["name"] == live_user.name
    assert "email_verified" in info

    for headers in ({}, {"Authorization": f"Basic {web_client.client_id}"}, {"Authorization": "Bearer"}):
        bare = requests.get(provider["userinfo_endpoint"], headers=headers, timeout=TIMEOUT)
        assert bare.status_code == 401, headers
        assert bare.headers["WWW-Authenticate"] == "Bearer", headers
        assert bare.json()["error"] == "invalid_request"
