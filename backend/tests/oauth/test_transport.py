"""Plain http to the protocol endpoints. TLS is required for the token endpoint (RFC 6749 §3.2,
§1.6), introspection (RFC 7662 §4), revocation (RFC 7009 §2) and UserInfo (OIDC Core §5.3);
Authlib accepts plain http only to loopback (RFC 8252 §7.3). Anything else is refused with
RFC 6749 §5.2's invalid_request, never a 500. The test client's default host, localhost, is loopback;
these requests name another host.
"""

from __future__ import annotations

import pytest

FOREIGN_ORIGIN = "https://not-a-client.example"
PLAIN_HTTP = "http://id.example.test"


@pytest.fixture
def endpoint_requests(client, machine_client):
    token = client.post("/oauth2/token", **machine_client.authenticate(
        {"grant_type": "client_credentials"})).get_json()["access_token"]
    return {
        "token": ("POST", "/oauth2/token", machine_client.authenticate({"grant_type": "client_credentials"})),
        "introspect": ("POST", "/oauth2/introspect", machine_client.authenticate({"token": token})),
        "revoke": ("POST", "/oauth2/revoke", machine_client.authenticate({"token": token})),
        "userinfo": ("GET", "/oauth2/userinfo", {"headers": {"Authorization": f"Bearer {token}"}}),
    }


@pytest.mark.parametrize("endpoint", ["token", "introspect", "revoke", "userinfo"])
@pytest.mark.parametrize("origin", [None, FOREIGN_ORIGIN], ids=["no-origin", "origin"])
def test_plain_http_is_refused_with_invalid_request(client, endpoint_requests, endpoint, origin, caplog):
    """RFC 6749 §5.2: 400 invalid_request, not cached; nothing is issued and nothing is logged as an error,
    with or without a CORS Origin."""
    method, path, kwargs = endpoint_requests[endpoint]
    kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), **({"Origin": origin} if origin else {})}}

    response = client.open(path, method=method, base_url=PLAIN_HTTP, **kwargs)

    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid_request",
                                   "error_description": "This endpoint requires TLS: send the request over https."}
    assert response.headers["Cache-Control"] == "no-store"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize("endpoint", ["token", "introspect", "revoke", "userinfo"])
def test_the_same_requests_over_https_are_served(client, endpoint_requests, endpoint):
    """The control: the same host over https gets the endpoint's own answer (UserInfo: 401 invalid_token,
    RFC 6750 §3.1, since a client-credentials token has no user)."""
    method, path, kwargs = endpoint_requests[endpoint]
    response = client.open(path, method=method, base_url="https://id.example.test", **kwargs)
    assert response.status_code == (401 if endpoint == "userinfo" else 200)
    if endpoint == "userinfo":
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
