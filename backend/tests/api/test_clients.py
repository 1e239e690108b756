"""/api/v1/clients: platform admins manage OAuth clients through the envelope API."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import select

from app.api.openapi import build_spec, undocumented_api_rules
from app.models import AuditEvent, OAuthClient
from tests.conftest import make_settings
from tests.factories import DEFAULT_CLIENT_SECRET, OAuthClientFactory, UserFactory

BASE = "/api/v1/clients"
OUT_FIELDS = {
    "client_id", "name", "client_type", "token_endpoint_auth_method", "redirect_uris", "post_logout_redirect_uris",
    "grant_types", "response_types", "scopes", "require_pkce", "first_party", "jwks", "id_token_signed_response_alg",
    "access_token_lifetime", "refresh_token_lifetime", "organization_id", "organization_required", "created_at",
    "updated_at",
}


@pytest.fixture
def settings(database_url):
    # Every test here signs in. Flask-Limiter keeps the first app's RATELIMIT_KEY_PREFIX on its
    # module-level instance, so with Redis the login limit counts across tests, not per test.
    return make_settings(database_url, RATELIMIT_LOGIN="1000 per minute")


@pytest.fixture
def admin_token(db_session, login) -> str:
    return login(UserFactory(is_platform_admin=True))


@pytest.fixture
def user_token(db_session, login) -> str:
    return login(UserFactory())


def web_app(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Billing", "client_type": "confidential",
        "redirect_uris": ["https://billing.example.com/callback"],
        "post_logout_redirect_uris": ["https://billing.example.com/"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["openid", "profile", "email", "offline_access"],
    }
    body.update(overrides)
    return body


def stored(db_session, client_id: str) -> OAuthClient | None:
    return db_session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def audit_actions(db_session, client_id: str) -> list[str]:
    return list(db_session.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "client",
                                                                   AuditEvent.target_id == client_id)
                                   .order_by(AuditEvent.occurred_at)))


# --- who may call: 401 without a session, 403 for users who are not platform admins ---

ENDPOINTS = [
    ("GET", BASE, None),
    ("POST", BASE, web_app()),
    ("GET", f"{BASE}/{{client_id}}", None),
    ("PATCH", f"{BASE}/{{client_id}}", {"name": "New"}),
    ("DELETE", f"{BASE}/{{client_id}}", None),
    ("POST", f"{BASE}/{{client_id}}/secret", None),
]
ENDPOINT_IDS = ["list", "create", "get", "update", "delete", "rotate"]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_endpoint_without_session_is_401(api, db_session, method, path, body):
    client = OAuthClientFactory()
    response = api.request(method, path.format(client_id=client.client_id), json=body)
    assert response.status == 401
    assert response.error_type == "AUTHENTICATION_ERROR"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_endpoint_for_non_admin_is_403_and_changes_nothing(api, db_session, user_token, method, path, body):
    client = OAuthClientFactory()
    response = api.request(method, path.format(client_id=client.client_id), json=body, token=user_token)
    assert response.status == 403
    assert response.error_type == "PERMISSION_DENIED"
    assert stored(db_session, client.client_id).check_client_secret(DEFAULT_CLIENT_SECRET)
    assert db_session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("client.%"))).all() == []


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS[2:], ids=ENDPOINT_IDS[2:])
def test_endpoint_for_unknown_client_is_404(api, admin_token, method, path, body):
    response = api.request(method, path.format(client_id="no-such-client"), json=body, token=admin_token)
    assert response.status == 404
    assert response.error_type == "NOT_FOUND"


# --- POST /clients ---

def test_create_confidential_client_returns_secret_once(api, db_session, admin_token):
    response = api.post(BASE, json=web_app(), token=admin_token)

    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"  # the body carries a credential (RFC 6749 §5.1)
    data = response.data
    assert set(data) == OUT_FIELDS | {"client_secret"}
    assert data["client_type"] == "confidential"
    assert data["token_endpoint_auth_method"] == "client_secret_basic"
    assert data["response_types"] == ["code"] and data["require_pkce"] is True
    client = stored(db_session, data["client_id"])
    assert client.client_secret_hash == hashlib.sha256(data["client_secret"].encode()).hexdigest()
    assert client.check_client_secret(data["client_secret"])
    assert audit_actions(db_session, data["client_id"]) == ["client.created"]

    again = api.get(f"{BASE}/{data['client_id']}", token=admin_token)
    assert "client_secret" not in again.data and "client_secret_hash" not in again.data


def test_create_public_client_has_null_secret(api, db_session, admin_token):
    response = api.post(BASE, json=web_app(client_type="public", redirect_uris=["http://127.0.0.1:8400/cb"]),
                        token=admin_token)
    assert response.status == 201
    assert response.data["client_secret"] is None
    assert response.data["client_type"] == "public"
    assert response.data["token_endpoint_auth_method"] == "none"
    assert stored(db_session, response.data["client_id"]).client_secret_hash is None


def test_create_machine_client(api, admin_token):
    response = api.post(BASE, json={"name": "Nightly export", "client_type": "confidential",
                                    "grant_types": ["client_credentials"], "scopes": ["reports:read"],
                                    "access_token_lifetime": 300}, token=admin_token)
    assert response.status == 201
    assert response.data["redirect_uris"] == [] and response.data["response_types"] == []
    assert response.data["access_token_lifetime"] == 300


GOOD_REDIRECT_URIS = [
    "https://app.example.com/callback",
    "https://app.example.com:8443/cb?tenant=acme",
    "http://127.0.0.1:8080/callback",
    "http://127.0.0.1/callback",
    "http://[::1]:3000/cb",
    "http://localhost:5173/auth/callback",
    "com.example.app:/oauth2redirect",
    "com.example.app://callback",
    "https://" + "a" * 63 + ".example.com/" + "p" * 1900,
]


@pytest.mark.parametrize("uri", GOOD_REDIRECT_URIS)
def test_create_accepts_redirect_uri(api, db_session, admin_token, uri):
    response = api.post(BASE, json=web_app(redirect_uris=[uri], post_logout_redirect_uris=[uri]), token=admin_token)
    assert response.status == 201, response.body
    assert stored(db_session, response.data["client_id"]).redirect_uris == [uri]


BAD_REDIRECT_URIS = {
    "relative": "/callback",
    "no-scheme": "app.example.com/callback",
    "http-non-loopback": "http://app.example.com/callback",
    "http-loopback-lookalike": "http://localhost.evil.example/cb",
    "http-other-loopback-ip": "http://127.0.0.2/cb",
    "fragment": "https://app.example.com/callback#state",
    "empty-fragment": "https://app.example.com/callback#",
    "wildcard-host": "https://*.example.com/callback",
    "wildcard-path": "https://app.example.com/*",
    "javascript": "javascript:alert(1)",
    "data": "data:text/html,hi",
    "file": "file:///etc/passwd",
    "custom-scheme-without-dot": "myapp://callback",
    "private-use-without-slash": "app.example.com:8080/cb",
    "no-host": "https:///callback",
    "userinfo": "https://user:pass@app.example.com/cb",
    "space": "https://app.example.com/call back",
    "newline": "https://app.example.com/cb\n",
    "non-ascii": "https://app.example.com/caf\u00e9",
    "bad-port": "https://app.example.com:99999/cb",
    "too-long": "https://app.example.com/" + "p" * 2000,
    "empty": "",
}


@pytest.mark.parametrize("uri", BAD_REDIRECT_URIS.values(), ids=BAD_REDIRECT_URIS.keys())
@pytest.mark.parametrize("field", ["redirect_uris", "post_logout_redirect_uris"])
def test_create_rejects_redirect_uri(api, db_session, admin_token, field, uri):
    response = api.post(BASE, json=web_app(**{field: ["https://ok.example.com/cb", uri]}), token=admin_token)
    assert response.status == 422
    assert response.error_type == "VALIDATION_ERROR"
    assert list(response.body["error"]["details"][field]) == ["1"]
    assert db_session.scalars(select(OAuthClient)).all() == []


@pytest.mark.parametrize(("body", "field"), [
    pytest.param({**web_app(), "client_secret": "mine"}, "client_secret", id="unknown-field"),
    pytest.param({k: v for k, v in web_app().items() if k != "name"}, "name", id="missing-name"),
    pytest.param({k: v for k, v in web_app().items() if k != "grant_types"}, "grant_types", id="missing-grants"),
    pytest.param(web_app(client_type="trusted"), "client_type", id="bad-client-type"),
    pytest.param(web_app(token_endpoint_auth_method="tls_client_auth"), "token_endpoint_auth_method",
                 id="bad-auth-method"),
    pytest.param(web_app(scopes="openid profile"), "scopes", id="scopes-not-a-list"),
    pytest.param(web_app(access_token_lifetime="600"), "access_token_lifetime", id="lifetime-string"),
    pytest.param(web_app(redirect_uris=["https://a.example.com/cb"] * 33), "redirect_uris", id="too-many-uris"),
])
def test_create_rejects_malformed_body(api, admin_token, body, field):
    response = api.post(BASE, json=body, token=admin_token)
    assert response.status == 422
    assert field in response.body["error"]["details"]


@pytest.mark.parametrize(("overrides", "field"), [
    pytest.param({"client_type": "public", "grant_types": ["client_credentials"], "scopes": ["x:read"]},
                 "grant_types", id="public-client-credentials"),
    pytest.param({"grant_types": ["refresh_token"]}, "grant_types", id="refresh-without-code"),
    pytest.param({"redirect_uris": []}, "redirect_uris", id="code-without-redirect"),
    pytest.param({"scopes": ["openid", "Admin"]}, "scopes", id="bad-scope"),
    pytest.param({"token_endpoint_auth_method": "private_key_jwt"}, "jwks", id="private-key-jwt-without-jwks"),
    pytest.param({"id_token_signed_response_alg": "HS256"}, "id_token_signed_response_alg", id="hs256"),
    pytest.param({"refresh_token_lifetime": 86400 * 91}, "refresh_token_lifetime", id="lifetime-too-long"),
])
def test_create_rule_violation_is_422_with_field_details(api, db_session, admin_token, overrides, field):
    response = api.post(BASE, json=web_app(**overrides), token=admin_token)
    assert response.status == 422
    assert response.error_type == "VALIDATION_ERROR"
    assert field in response.body["error"]["details"]
    assert db_session.scalars(select(OAuthClient)).all() == []


def test_create_non_json_body_is_415(api, admin_token):
    response = api.post(BASE, data="name=x", headers={"Content-Type": "application/x-www-form-urlencoded"},
                        token=admin_token)
    assert response.status == 415


# --- GET /clients ---

def test_list_clients_is_paginated_and_never_shows_secrets(api, db_session, admin_token):
    made = [OAuthClientFactory() for _ in range(3)]
    response = api.get(f"{BASE}?page=2&per_page=2", token=admin_token)

    assert response.status == 200
    assert response.body["meta"] == {"page": 2, "per_page": 2, "total": 3}
    assert [c["client_id"] for c in response.data] == [made[2].client_id]
    assert set(response.data[0]) == OUT_FIELDS


def test_list_clients_defaults_to_first_page(api, db_session, admin_token):
    OAuthClientFactory()
    response = api.get(BASE, token=admin_token)
    assert response.body["meta"] == {"page": 1, "per_page": 20, "total": 1}
    assert len(response.data) == 1


def test_list_clients_empty(api, admin_token):
    response = api.get(BASE, token=admin_token)
    assert response.status == 200
    assert response.data == [] and response.body["meta"]["total"] == 0


@pytest.mark.parametrize("query", ["page=0", "per_page=0", "per_page=101", "page=abc", "sort=name"])
def test_list_clients_bad_query_is_422(api, admin_token, query):
    response = api.get(f"{BASE}?{query}", token=admin_token)
    assert response.status == 422
    assert response.error_type == "VALIDATION_ERROR"


# --- GET /clients/<client_id> ---

def test_get_client_returns_it_without_secret(api, db_session, admin_token):
    client = OAuthClientFactory(public=True, name="Mobile")
    response = api.get(f"{BASE}/{client.client_id}", token=admin_token)
    assert response.status == 200
    assert set(response.data) == OUT_FIELDS
    assert response.data["name"] == "Mobile" and response.data["client_type"] == "public"


# --- PATCH /clients/<client_id> ---

def test_update_client_changes_fields_and_audits(api, db_session, admin_token):
    client = OAuthClientFactory()
    response = api.patch(f"{BASE}/{client.client_id}", token=admin_token, json={
        "name": "Renamed", "redirect_uris": ["https://new.example.com/cb"], "first_party": True,
        "refresh_token_lifetime": None})

    assert response.status == 200
    assert response.data["name"] == "Renamed" and response.data["first_party"] is True
    assert "client_secret" not in response.data
    db_client = stored(db_session, client.client_id)
    assert db_client.redirect_uris == ["https://new.example.com/cb"]
    assert db_client.check_client_secret(DEFAULT_CLIENT_SECRET)
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "client.updated"))
    assert event.details == {"fields": ["first_party", "name", "redirect_uris"]}


@pytest.mark.parametrize("uri", BAD_REDIRECT_URIS.values(), ids=BAD_REDIRECT_URIS.keys())
def test_update_client_rejects_redirect_uri(api, db_session, admin_token, uri):
    client = OAuthClientFactory()
    response = api.patch(f"{BASE}/{client.client_id}", json={"redirect_uris": [uri]}, token=admin_token)
    assert response.status == 422
    assert "redirect_uris" in response.body["error"]["details"]
    assert stored(db_session, client.client_id).redirect_uris == ["https://app.example.com/callback"]


@pytest.mark.parametrize("body", [
    pytest.param({"client_type": "public"}, id="client-type"),
    pytest.param({"token_endpoint_auth_method": "none"}, id="auth-method"),
    pytest.param({"client_secret": "mine"}, id="secret"),
    pytest.param({"client_id": "mine"}, id="client-id"),
    pytest.param({"name": None}, id="null-name"),
    pytest.param({"scopes": ["openid", "NOPE"]}, id="bad-scope"),
    pytest.param({"grant_types": ["refresh_token"]}, id="refresh-without-code"),
])
def test_update_client_invalid_body_is_422_and_changes_nothing(api, db_session, admin_token, body):
    client = OAuthClientFactory()
    response = api.patch(f"{BASE}/{client.client_id}", json=body, token=admin_token)
    assert response.status == 422
    assert response.error_type == "VALIDATION_ERROR"
    assert audit_actions(db_session, client.client_id) == []


# --- DELETE /clients/<client_id> ---

def test_delete_client_removes_it_and_audits(api, db_session, admin_token):
    client = OAuthClientFactory()
    client_id = client.client_id
    response = api.delete(f"{BASE}/{client_id}", token=admin_token)

    assert response.status == 200
    assert stored(db_session, client_id) is None
    assert audit_actions(db_session, client_id) == ["client.deleted"]
    assert api.get(f"{BASE}/{client_id}", token=admin_token).status == 404


# --- POST /clients/<client_id>/secret ---

def test_rotate_secret_returns_new_secret_once_and_old_one_stops_working(api, db_session, admin_token):
    client = OAuthClientFactory()
    response = api.post(f"{BASE}/{client.client_id}/secret", token=admin_token)

    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    new_secret = response.data["client_secret"]
    assert new_secret and new_secret != DEFAULT_CLIENT_SECRET
    db_client = stored(db_session, client.client_id)
    assert db_client.check_client_secret(new_secret)
    assert not db_client.check_client_secret(DEFAULT_CLIENT_SECRET)
    assert audit_actions(db_session, client.client_id) == ["client.secret_rotated"]
    assert "client_secret" not in api.get(f"{BASE}/{client.client_id}", token=admin_token).data


def test_rotate_secret_of_public_client_is_409(api, db_session, admin_token):
    client = OAuthClientFactory(public=True)
    response = api.post(f"{BASE}/{client.client_id}/secret", token=admin_token)
    assert response.status == 409
    assert response.error_type == "CONFLICT"
    assert audit_actions(db_session, client.client_id) == []


# --- OpenAPI ---

def test_client_routes_are_documented(app):
    assert [rule for rule in undocumented_api_rules(app) if rule.startswith(BASE)] == []
    paths = build_spec(app)["paths"]
    assert set(paths[BASE]) == {"get", "post"}
    assert set(paths[BASE + "/{client_id}"]) == {"get", "patch", "delete"}
    rotate = paths[BASE + "/{client_id}/secret"]["post"]
    assert {"401", "403", "404", "409"} <= set(rotate["responses"])
    assert rotate["security"] == [{"sessionToken": []}]
