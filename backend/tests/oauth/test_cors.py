"""CORS on the endpoints a browser-based client calls directly (Fetch Standard §3.2; RFC 9700 / the
OAuth 2.0 for Browser-Based Apps BCP §6.1: token, userinfo, revocation and JWKS)."""

from __future__ import annotations

import pytest

from tests.oauth.helpers import SPA_ORIGIN, WEB_ORIGIN

CORS_PATHS = {"/oauth2/token": "POST", "/oauth2/userinfo": "GET", "/oauth2/revoke": "POST", "/oauth2/jwks": "GET"}
ALLOWED_METHODS = {"/oauth2/token": "POST", "/oauth2/userinfo": "GET, POST", "/oauth2/revoke": "POST",
                   "/oauth2/jwks": "GET"}
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
                "Access-Control-Allow-Credentials")


def preflight(client, path: str, origin: str, method: str = "POST"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": "authorization, content-type"})


def assert_no_cors(response) -> None:
    for header in CORS_HEADERS:
        assert header not in response.headers, header


@pytest.mark.parametrize("path", sorted(CORS_PATHS))
@pytest.mark.parametrize("origin", [SPA_ORIGIN, WEB_ORIGIN], ids=["spa", "web"])
def test_preflight_from_a_registered_origin(spa_client, web_client, client, path, origin):
    """Fetch Standard §3.2.3 (CORS-preflight): the exact origin of a registered redirect URI is allowed,
    with the method and the Authorization header; never with credentials (no cookies here)."""
    response = preflight(client, path, origin, CORS_PATHS[path])
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert response.headers["Access-Control-Allow-Methods"] == ALLOWED_METHODS[path]  # the route's, no more
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    assert response.headers["Access-Control-Max-Age"] == "600"  # the browser may keep the answer ten minutes
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Origin" in response.headers.get("Vary", "")


@pytest.mark.parametrize("path", sorted(CORS_PATHS))
@pytest.mark.parametrize("origin", ["https://evil.example.net", "https://spa.example.com:8443",
                                    "http://spa.example.com", "https://spa.example.com.evil.example.net", "null"],
                         ids=["other", "other-port", "http", "suffix", "null"])
def test_preflight_from_an_unknown_origin_gets_no_cors_headers(spa_client, client, path, origin):
    """Fetch Standard §3.2.3: an origin that is not allowed gets no Access-Control-Allow-Origin."""
    response = preflight(client, path, origin, CORS_PATHS[path])
    assert_no_cors(response)


def test_token_request_from_the_spa_origin(authorize, spa_client, client):
    """Fetch Standard §3.2.5: the actual response carries Access-Control-Allow-Origin for the SPA's origin."""
    redirect = authorize(spa_client, scope="openid offline_access")
    response = client.post("/oauth2/token", headers={"Origin": SPA_ORIGIN}, data={
        "grant_type": "authorization_code", "code": redirect.code, "redirect_uri": redirect.redirect_uri,
        "code_verifier": redirect.pkce.verifier, "client_id": spa_client.client_id})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_token_error_from_the_spa_origin_is_readable(spa_client, client):
    """Fetch Standard §3.2.5: error responses carry the header too, so the SPA can read the RFC 6749 §5.2 error."""
    response = client.post("/oauth2/token", headers={"Origin": SPA_ORIGIN},
                           data={"grant_type": "refresh_token", "refresh_token": "nope",
                                 "client_id": spa_client.client_id})
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN


@pytest.mark.parametrize(("form", "status"), [
    ({"grant_type": "client_credentials\x00"}, 400),
    ({"grant_type": "client_credentials", "scope": "x" * (1024 * 1024 + 1)}, 413),
], ids=["refused-character", "over-the-limit"])
def test_a_request_refused_before_the_view_is_readable_from_the_spa_origin(spa_client, client, form, status):
    """Fetch Standard §3.2.5: a refusal made before the endpoint runs (security/request_input.py, the body
    limit) carries the header too, so the SPA can read its RFC 6749 §5.2 invalid_request."""
    response = client.post("/oauth2/token", headers={"Origin": SPA_ORIGIN},
                           data={**form, "client_id": spa_client.client_id})
    assert response.status_code == status
    assert response.get_json()["error"] == "invalid_request"
    assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert response.headers["Vary"] == "Origin"


def test_userinfo_revoke_and_jwks_from_the_spa_origin(obtain_tokens, spa_client, client):
    """Fetch Standard §3.2.5: userinfo (OIDC Core §5.3), revocation (RFC 7009 §2) and JWKS (RFC 7517)
    answer the SPA's origin."""
    tokens = obtain_tokens(spa_client, scope="openid offline_access")
    headers = {"Origin": SPA_ORIGIN}
    userinfo = client.get("/oauth2/userinfo", headers={**headers, "Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 200
    revoke = client.post("/oauth2/revoke", headers=headers,
                         data={"token": tokens["refresh_token"], "client_id": spa_client.client_id})
    assert revoke.status_code == 200
    jwks = client.get("/oauth2/jwks", headers=headers)
    assert jwks.status_code == 200
    for response in (userinfo, revoke, jwks):
        assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN


def test_actual_request_from_an_unknown_origin_gets_no_cors_headers(obtain_tokens, spa_client, client):
    """Fetch Standard §3.2.5: without an allowed origin the browser may not read the response."""
    tokens = obtain_tokens(spa_client, scope="openid")
    headers = {"Origin": "https://evil.example.net"}
    for response in (client.get("/oauth2/jwks", headers=headers),
                     client.get("/oauth2/userinfo",
                                headers={**headers, "Authorization": f"Bearer {tokens['access_token']}"}),
                     client.post("/oauth2/token", headers=headers, data={"grant_type": "client_credentials"})):
        assert_no_cors(response)


@pytest.mark.settings(CORS_EXTRA_ORIGINS="https://console.example.org")
def test_cors_extra_origins(client):
    """Fetch Standard §3.2: an operator-configured origin is allowed like a registered one."""
    response = client.get("/oauth2/jwks", headers={"Origin": "https://console.example.org"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://console.example.org"


def test_introspection_never_answers_cors(obtain_tokens, spa_client, web_client, client):
    """RFC 7662 §4: introspection is for resource servers, not browsers: no CORS, even for a registered origin."""
    tokens = obtain_tokens(web_client, scope="openid")
    assert_no_cors(preflight(client, "/oauth2/introspect", WEB_ORIGIN))
    response = client.post("/oauth2/introspect", headers={"Origin": WEB_ORIGIN},
                           **web_client.authenticate({"token": tokens["access_token"]}))
    assert response.status_code == 200
    assert_no_cors(response)


@pytest.mark.parametrize("path", ["/api/health", "/api/v1/clients", "/api/v1/nope"])
def test_api_paths_never_answer_cors(spa_client, client, path):
    """Fetch Standard §3.2.5: without Access-Control-Allow-Origin a cross-origin page cannot read the
    response; the management API (DESIGN.md) is not for browsers on other origins, so /api never sends it."""
    assert_no_cors(client.get(path, headers={"Origin": SPA_ORIGIN}))
    assert_no_cors(preflight(client, path, SPA_ORIGIN, "GET"))
