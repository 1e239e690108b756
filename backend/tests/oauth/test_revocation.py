"""/oauth2/revoke (RFC 7009)."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import select

from app.models import RefreshToken
from app.stores.denylist import MemoryDenylist, RedisDenylist
from tests.oauth.helpers import audit_events, verify_jwt

OFFLINE = "openid profile email offline_access"


def revoke(client, registered, token: str, **form: str):
    return client.post("/oauth2/revoke", **registered.authenticate({"token": token, **form}))


def assert_family_revoked(introspect, web_client, db_session, *responses: dict) -> None:
    """Every access token of the rotation family is inactive, both refresh tokens are revoked, and the
    revocation of the family is audited once."""
    for response in responses:
        assert introspect(web_client, response["access_token"]) == {"active": False}
    rows = list(db_session.scalars(select(RefreshToken)))
    assert len(rows) == 2 and all(row.revoked_at is not None for row in rows)
    [event] = audit_events(db_session, "oauth.token_revoked")
    assert event.target_type == "refresh_token_family"
    assert event.target_id == str(rows[0].family_id)


def test_revoked_access_token_is_denied_until_it_expires(app, obtain_tokens, web_client, client, introspect, bearer,
                                                         db_session):
    """RFC 7009 §2 and §2.2: the token is invalidated at once (200); introspection (RFC 7662 §2.2) and
    userinfo (RFC 6750 §3.1) reject it. The jti is denied — in Redis when REDIS_URL is set — until exp."""
    tokens = obtain_tokens(web_client, scope="openid profile")
    claims = verify_jwt(client, tokens["access_token"]).claims
    response = revoke(client, web_client, tokens["access_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert introspect(web_client, tokens["access_token"]) == {"active": False}
    assert bearer("/oauth2/userinfo", tokens["access_token"]).status_code == 401

    denylist = app.extensions["gatehouse.stores"].denylist
    assert denylist.is_denied(claims["jti"])
    if os.environ.get("REDIS_URL"):
        assert isinstance(denylist, RedisDenylist)
        # Denied until the token's own exp: its key, and its entry in the set every process mirrors.
        assert 0 < denylist.redis.ttl(f"{denylist.prefix}:denied-jti:{claims['jti']}") <= claims["exp"] - int(time.time()) + 1
        assert denylist.redis.zscore(denylist.denied, claims["jti"]) == claims["exp"]
    else:
        assert isinstance(denylist, MemoryDenylist)
    [event] = audit_events(db_session, "oauth.token_revoked")
    assert event.target_type == "access_token"
    assert event.target_id == claims["jti"]
    assert event.details == {"client_id": web_client.client_id}


def test_revoking_a_refresh_token_revokes_its_family(obtain_tokens, web_client, client, introspect, token_request,
                                                     db_session):
    """RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the access tokens of the same grant;
    here every token of the rotation family (RFC 9700 §4.14.2)."""
    first = obtain_tokens(web_client, scope=OFFLINE)
    second = token_request(web_client, grant_type="refresh_token", refresh_token=first["refresh_token"]).get_json()
    assert revoke(client, web_client, second["refresh_token"]).status_code == 200

    refused = token_request(web_client, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "invalid_grant"
    assert_family_revoked(introspect, web_client, db_session, first, second)


def test_unknown_token_is_200(web_client, client, db_session):
    """RFC 7009 §2.2: invalid tokens do not cause an error response."""
    response = revoke(client, web_client, "no-such-token")
    assert response.status_code == 200
    assert response.get_json() == {}
    assert audit_events(db_session, "oauth.token_revoked") == []


def test_wrong_hint_still_finds_the_token(obtain_tokens, web_client, client, introspect):
    """RFC 7009 §2.1: with a wrong token_type_hint the server MUST extend its search to other types."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    assert revoke(client, web_client, tokens["access_token"], token_type_hint="refresh_token").status_code == 200
    assert introspect(web_client, tokens["access_token"]) == {"active": False}
    assert introspect(web_client, tokens["refresh_token"])["active"] is True
    assert revoke(client, web_client, tokens["refresh_token"], token_type_hint="access_token").status_code == 200
    assert introspect(web_client, tokens["refresh_token"]) == {"active": False}


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_unknown_token_type_hint_is_ignored(obtain_tokens, web_client, client, introspect, kind):
    """RFC 7009 §2.1: the server MAY ignore the hint and MUST search all its token types, so an unknown
    hint is no error; unsupported_token_type (§2.2.1) is for a token type the server cannot revoke."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    response = revoke(client, web_client, tokens[kind], token_type_hint="id_token")
    assert response.status_code == 200
    assert response.get_json() == {}
    assert introspect(web_client, tokens[kind]) == {"active": False}


def test_unknown_token_with_an_unknown_hint_is_200(web_client, client, db_session):
    """RFC 7009 §2.1 and §2.2: neither an unknown hint nor an invalid token causes an error response."""
    response = revoke(client, web_client, "no-such-token", token_type_hint="id_token")
    assert response.status_code == 200
    assert response.get_json() == {}
    assert audit_events(db_session, "oauth.token_revoked") == []


@pytest.mark.settings(REFRESH_REUSE_GRACE_SECONDS=30)
def test_revoking_a_rotated_refresh_token_in_the_grace_window_revokes_its_family(
        obtain_tokens, web_client, client, token_request, introspect, db_session):
    """RFC 7009 §2.1: the presented refresh token is revoked with its grant. One already rotated, but
    still redeemable in the grace window, is revoked too: neither it nor its successor can be used
    afterwards, and the family's access tokens are denied."""
    first = obtain_tokens(web_client, scope=OFFLINE)
    second = token_request(web_client, grant_type="refresh_token", refresh_token=first["refresh_token"]).get_json()
    response = revoke(client, web_client, first["refresh_token"], token_type_hint="refresh_token")
    assert response.status_code == 200

    for refresh_token in (first["refresh_token"], second["refresh_token"]):
        refused = token_request(web_client, grant_type="refresh_token", refresh_token=refresh_token)
        assert refused.status_code == 400
        assert refused.get_json()["error"] == "invalid_grant"
    assert_family_revoked(introspect, web_client, db_session, first, second)


def test_public_client_revokes_its_refresh_token_with_client_id_only(obtain_tokens, spa_client, client,
                                                                     token_request, db_session):
    """RFC 7009 §2.1 and §5: a public client identifies itself with client_id (RFC 6749 §2.3)."""
    tokens = obtain_tokens(spa_client, scope=OFFLINE)
    response = client.post("/oauth2/revoke", data={"token": tokens["refresh_token"], "client_id": spa_client.client_id,
                                                   "token_type_hint": "refresh_token"})
    assert response.status_code == 200
    refused = token_request(spa_client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refused.get_json()["error"] == "invalid_grant"
    assert db_session.scalar(select(RefreshToken)).revoked_at is not None


def test_another_clients_token_is_refused_and_not_revoked(obtain_tokens, web_client, register, client, introspect,
                                                          db_session):
    """RFC 7009 §2.1: the server verifies the token was issued to the requesting client; if not, the
    request is refused with an error (§2.2.1) and the token stays valid."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    other = register(name="Other", redirect_uris=["https://other.example.com/cb"])
    for token in (tokens["access_token"], tokens["refresh_token"]):
        response = revoke(client, other, token)
        assert response.status_code == 400
        assert response.get_json()["error"]
        assert introspect(web_client, token)["active"] is True
    assert db_session.scalar(select(RefreshToken)).revoked_at is None
    assert audit_events(db_session, "oauth.token_revoked") == []


def test_public_client_cannot_revoke_a_confidential_clients_token(obtain_tokens, web_client, spa_client, client,
                                                                  introspect):
    """RFC 7009 §2.1: ownership is checked for public clients too."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    response = client.post("/oauth2/revoke", data={"token": tokens["refresh_token"], "client_id": spa_client.client_id})
    assert response.status_code == 400
    assert introspect(web_client, tokens["refresh_token"])["active"] is True


def test_confidential_client_must_authenticate(obtain_tokens, web_client, client, introspect):
    """RFC 7009 §2.1: a confidential client authenticates; client_id alone is refused (RFC 6749 §5.2)."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    response = client.post("/oauth2/revoke", data={"token": tokens["refresh_token"], "client_id": web_client.client_id})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert introspect(web_client, tokens["refresh_token"])["active"] is True


def test_missing_token_parameter_is_invalid_request(web_client, client):
    """RFC 7009 §2.1 (token REQUIRED) and §2.2.1."""
    response = client.post("/oauth2/revoke", **web_client.authenticate({}))
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
