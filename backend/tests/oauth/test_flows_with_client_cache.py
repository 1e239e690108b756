"""The protocol flows with the client cache on, as in production (testing turns it off by default).

A cache hit hands the grants a detached copy of the client (stores.client_cache.ClientCache), never
an instance of the request's session: every flow that reads, stores against or revokes for a
client must work with one, and the second round of each flow below is served from the cache.
"""

from __future__ import annotations

import pytest
from flask import Flask

from app.extensions import db
from tests.conftest import count_sql
from tests.oauth.helpers import WEB_POST_LOGOUT_URI

pytestmark = pytest.mark.settings(CLIENT_CACHE_SECONDS=30)
OFFLINE = "openid profile email offline_access"


def engine_of(app: Flask):
    with app.app_context():
        return db.engine


def client_row_reads(statements: list[str]) -> list[str]:
    """The statements that read a client's row by client_id (the nonce check joins the table; not that)."""
    return [s for s in statements if "FROM oauth_clients" in s and "oauth_clients.client_id =" in s]


def test_code_refresh_introspection_userinfo_and_revocation_from_cached_clients(app, obtain_tokens, token_request,
                                                                                 web_client, introspect, bearer,
                                                                                 client):
    """RFC 6749 §4.1 and §6, RFC 7662, OIDC Core §5.3 and RFC 7009 with the client from the cache."""
    obtain_tokens(web_client, scope=OFFLINE)  # fills the cache
    with count_sql(engine_of(app)) as statements:
        tokens = obtain_tokens(web_client, scope=OFFLINE)
        refreshed = token_request(web_client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.get_json()
        access_token = refreshed.get_json()["access_token"]
        assert introspect(web_client, access_token)["active"] is True
        assert bearer("/oauth2/userinfo", access_token).status_code == 200
        family = refreshed.get_json()["refresh_token"]
        assert client.post("/oauth2/revoke", **web_client.authenticate({"token": family})).status_code == 200
        assert introspect(web_client, access_token) == {"active": False}
    # The client's own row is never read again: what grants and endpoints got was the cache's copy.
    assert client_row_reads(statements) == []


def test_consent_and_logout_from_cached_clients(app, authorize, exchange, signed_in, web_client):
    """Consent is remembered per client (OIDC Core §3.1.2.4) and RP-initiated logout redirects to the
    registered URI (RP-Initiated Logout 1.0 §3), with the client from the cache."""
    first = exchange(authorize(web_client, scope="openid profile"))
    assert first.status_code == 200
    with count_sql(engine_of(app)) as statements:
        second = authorize(web_client, scope="openid profile", consent=None)  # consent given: no page
        id_token = exchange(second).get_json()["id_token"]
        response = signed_in.http.get("/oauth2/logout", query_string={
            "id_token_hint": id_token, "post_logout_redirect_uri": WEB_POST_LOGOUT_URI, "state": "s"})
    assert response.status_code == 302 and response.location == WEB_POST_LOGOUT_URI + "?state=s"
    assert client_row_reads(statements) == []
