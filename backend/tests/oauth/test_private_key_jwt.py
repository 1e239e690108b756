"""private_key_jwt client authentication (RFC 7523 §2.2 and §3; OIDC Core §9)."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
from joserfc.jwk import RSAKey

from tests.oauth.helpers import ASSERTION_TYPE, ISSUER, TOKEN_ENDPOINT, verify_jwt


@pytest.fixture
def jwt_client(register, rsa_key):
    """A machine client that registered its public key (a JWK Set) instead of getting a secret."""
    return register(name="Key Job", grant_types=["client_credentials"], scopes=["invoices:read"],
                    token_endpoint_auth_method="private_key_jwt", private_jwk=rsa_key)


def with_assertion(assertion: str, **form: str) -> dict:
    return {"data": {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                     "client_assertion": assertion, **form}}


def assert_invalid_client(response) -> None:
    """RFC 7523 §3.2 / RFC 6749 §5.2: a bad assertion is invalid_client and issues nothing."""
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["error"] == "invalid_client"
    assert "access_token" not in response.get_json()


def test_signed_assertion_authenticates_the_client(jwt_client, client):
    """RFC 7523 §2.2 (client_assertion_type, client_assertion) and §3 (iss = sub = client_id,
    aud = the token endpoint, exp, jti): the client gets a client-credentials token."""
    assert jwt_client.secret is None
    response = client.post("/oauth2/token", **with_assertion(jwt_client.assertion(audience=TOKEN_ENDPOINT)))
    assert response.status_code == 200, response.get_json()
    claims = verify_jwt(client, response.get_json()["access_token"]).claims
    assert claims["sub"] == claims["client_id"] == jwt_client.client_id
    assert claims["scope"] == "invoices:read"


def test_issuer_as_audience_is_accepted(jwt_client, client):
    """RFC 7523 §3 item 3: the aud may identify the authorization server by its issuer identifier."""
    response = client.post("/oauth2/token", **with_assertion(jwt_client.assertion(audience=ISSUER)))
    assert response.status_code == 200


def test_replayed_assertion_is_invalid_client(jwt_client, client):
    """RFC 7523 §3 item 7: the server may ensure a JWT is used once (jti); a replay is invalid_client."""
    assertion = jwt_client.assertion(jti=secrets.token_urlsafe(16))
    assert client.post("/oauth2/token", **with_assertion(assertion)).status_code == 200
    assert_invalid_client(client.post("/oauth2/token", **with_assertion(assertion)))


def test_same_jti_in_a_new_assertion_is_invalid_client(jwt_client, client):
    """RFC 7523 §3 item 7: the jti, not the exact string, identifies a used assertion."""
    jti = secrets.token_urlsafe(16)
    assert client.post("/oauth2/token", **with_assertion(jwt_client.assertion(jti=jti))).status_code == 200
    assert_invalid_client(client.post("/oauth2/token", **with_assertion(jwt_client.assertion(jti=jti, lifetime=120))))


def test_a_jti_is_single_use_per_client_not_across_clients(jwt_client, register, client):
    """RFC 7523 §3 item 7: a jti identifies one client's assertion; another client may pick the same."""
    other_key = RSAKey.generate_key(2048, parameters={"kid": "other", "alg": "RS256", "use": "sig"})
    other = register(name="Other Key Job", grant_types=["client_credentials"], scopes=["invoices:read"],
                     token_endpoint_auth_method="private_key_jwt", private_jwk=other_key)
    jti = secrets.token_urlsafe(16)
    assert client.post("/oauth2/token", **with_assertion(jwt_client.assertion(jti=jti))).status_code == 200
    assert client.post("/oauth2/token", **with_assertion(other.assertion(jti=jti))).status_code == 200


def test_assertion_signed_by_another_key_is_invalid_client(jwt_client, client):
    """RFC 7523 §3 item 9: the signature must verify with the client's registered key."""
    other = RSAKey.generate_key(2048, parameters={"kid": jwt_client.private_jwk.kid})
    assert_invalid_client(client.post("/oauth2/token", **with_assertion(jwt_client.assertion(key=other))))


@pytest.mark.parametrize("audience", ["https://other-as.example.com/oauth2/token", f"{ISSUER}/oauth2/introspect"],
                         ids=["other-server", "other-endpoint"])
def test_assertion_for_another_audience_is_invalid_client(jwt_client, client, audience):
    """RFC 7523 §3 item 3: an assertion whose aud does not identify this server is rejected."""
    assert_invalid_client(client.post("/oauth2/token", **with_assertion(jwt_client.assertion(audience=audience))))


def test_expired_assertion_is_invalid_client(jwt_client, client):
    """RFC 7523 §3 item 4: an assertion past its exp (beyond clock skew) is rejected."""
    assert_invalid_client(client.post("/oauth2/token", **with_assertion(jwt_client.assertion(lifetime=-600))))


def test_assertion_for_another_client_is_invalid_client(jwt_client, register, client, rsa_key):
    """RFC 7523 §3 items 1–2: iss and sub are the client_id; a key cannot speak for another client."""
    other = register(name="Other Key Job", grant_types=["client_credentials"], scopes=["invoices:read"],
                     token_endpoint_auth_method="private_key_jwt",
                     private_jwk=RSAKey.generate_key(2048, parameters={"kid": "other"}))
    forged = replace(other, private_jwk=rsa_key).assertion()  # claims other's id, signed with jwt_client's key
    assert_invalid_client(client.post("/oauth2/token", **with_assertion(forged)))


def test_secret_client_cannot_authenticate_with_an_assertion(machine_client, client, rsa_key):
    """OIDC Core §9: a client uses the method it registered; a secret client has no key to check."""
    forged = replace(machine_client, private_jwk=rsa_key).assertion()
    assert_invalid_client(client.post("/oauth2/token", **with_assertion(forged)))


def test_key_client_cannot_authenticate_with_a_made_up_secret(jwt_client, client):
    """OIDC Core §9: a private_key_jwt client has no secret; Basic credentials do not authenticate it."""
    response = client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                           auth=(jwt_client.client_id, "anything"))
    assert_invalid_client(response)


def test_private_key_jwt_at_introspection(jwt_client, client):
    """RFC 7662 §2.1 with RFC 7523 §2.2: the same assertion method authenticates at introspection."""
    token = client.post("/oauth2/token", **with_assertion(jwt_client.assertion())).get_json()["access_token"]
    response = client.post("/oauth2/introspect", data={
        "token": token, "client_assertion_type": ASSERTION_TYPE, "client_assertion": jwt_client.assertion()})
    assert response.status_code == 200
    assert response.get_json()["active"] is True


def test_replay_is_refused_within_the_clock_skew_allowance(jwt_client, client):
    """RFC 7523 §3 items 4 and 7: an assertion accepted thanks to clock-skew leeway (exp just passed)
    is single-use too."""
    assertion = jwt_client.assertion(lifetime=-30)
    assert client.post("/oauth2/token", **with_assertion(assertion)).status_code == 200
    assert_invalid_client(client.post("/oauth2/token", **with_assertion(assertion)))
