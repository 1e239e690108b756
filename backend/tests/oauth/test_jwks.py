"""/oauth2/jwks: the public signing keys (RFC 7517)."""

from __future__ import annotations

from tests.oauth.helpers import unverified_header

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def test_jwks_publishes_public_members_only(client):
    """RFC 7517 §5 (JWK Set) and RFC 7518 §6.2.2 / §6.3.2: no private key member is ever published."""
    response = client.get("/oauth2/jwks")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    keys = response.get_json()["keys"]
    assert keys, "at least one signing key"
    for key in keys:
        assert not PRIVATE_MEMBERS & key.keys(), key
        assert key["use"] == "sig"
        assert key["kid"] and key["alg"] in {"RS256", "ES256"}
        assert key["kty"] == {"RS256": "RSA", "ES256": "EC"}[key["alg"]]
    assert len({key["kid"] for key in keys}) == len(keys), "kids are unique (RFC 7517 §4.5)"
    assert {key["alg"] for key in keys} >= {"RS256", "ES256"}


def test_every_issued_token_kid_is_published(client, register, obtain_tokens):
    """RFC 7517 §4.5 / RFC 7515 §4.1.4: the kid of each access token (RFC 9068 §2.1) and id_token
    (OIDC Core §10.1), RS256 and ES256, names a key in the JWK Set."""
    rs256 = register(redirect_uris=["https://a.example.com/cb"], first_party=True)
    es256 = register(redirect_uris=["https://b.example.com/cb"], first_party=True, id_token_signed_response_alg="ES256")
    published = {key["kid"]: key for key in client.get("/oauth2/jwks").get_json()["keys"]}
    for registered, id_token_alg in ((rs256, "RS256"), (es256, "ES256")):
        tokens = obtain_tokens(registered)
        access_header = unverified_header(tokens["access_token"])
        id_header = unverified_header(tokens["id_token"])
        assert access_header["kid"] in published
        assert published[access_header["kid"]]["alg"] == access_header["alg"] == "RS256"
        assert id_header["kid"] in published
        assert published[id_header["kid"]]["alg"] == id_header["alg"] == id_token_alg
