"""/api/v1/organizations/<org_id>/clients: an organization's admins manage its OAuth clients.

The client rules themselves are tested on /api/v1/clients and in the service; here:
ownership, scoping (404 across organizations and for platform clients), permissions,
first_party, organization_required, the audit trail, and that the clients work.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from app.api.openapi import build_spec, undocumented_api_rules
from app.models import AuditEvent, OAuthClient, Organization, Role, User
from tests.factories import (
    DEFAULT_CLIENT_SECRET,
    OAuthClientFactory,
    UserFactory,
    add_member,
    create_organization,
    session_token,
)
from tests.conftest import make_settings

PLATFORM_BASE = "/api/v1/clients"


@pytest.fixture
def settings(database_url):
    # The protocol endpoints' client cache on, as in production: changes made here must reach it.
    return make_settings(database_url, CLIENT_CACHE_SECONDS=300)


def base(organization: Organization) -> str:
    return f"/api/v1/organizations/{organization.id}/clients"


@dataclass
class Org:
    organization: Organization
    owner: User
    # A session token of the owner.
    token: str
    client: OAuthClient


def make_org(db_session, slug: str) -> Org:
    owner = UserFactory()
    organization = create_organization(db_session, owner=owner, slug=slug)
    return Org(organization, owner, session_token(owner), OAuthClientFactory(organization_id=organization.id))


@pytest.fixture
def acme(db_session) -> Org:
    return make_org(db_session, "acme")


@pytest.fixture
def globex(db_session) -> Org:
    return make_org(db_session, "globex")


def web_app(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Billing", "client_type": "confidential",
        "redirect_uris": ["https://billing.example.com/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["openid", "profile", "email", "offline_access"],
    }
    body.update(overrides)
    return body


def stored(db_session, client_id: str) -> OAuthClient | None:
    db_session.expire_all()
    return db_session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def client_events(db_session, client_id: str) -> list[tuple[str, Any]]:
    """(action, organization_id) of the client's audit events, oldest first."""
    return [tuple(row) for row in db_session.execute(
        select(AuditEvent.action, AuditEvent.organization_id)
        .where(AuditEvent.target_type == "client", AuditEvent.target_id == client_id)
        .order_by(AuditEvent.occurred_at))]


def member_token(db_session, org: Org, role: str) -> str:
    user = UserFactory()
    add_member(db_session, org.organization, user, role)
    return session_token(user)


# (method, path below the organization's clients, body)
CLIENT_OPERATIONS = [
    ("GET", "/{client_id}", None),
    ("PATCH", "/{client_id}", {"name": "Taken over"}),
    ("DELETE", "/{client_id}", None),
    ("POST", "/{client_id}/secret", None),
]
CLIENT_OPERATION_IDS = ["get", "update", "delete", "rotate"]
OPERATIONS = [("GET", "", None), ("POST", "", web_app()), *CLIENT_OPERATIONS]
OPERATION_IDS = ["list", "create", *CLIENT_OPERATION_IDS]
WRITE_OPERATIONS = [op for op in OPERATIONS if op[0] != "GET"]
WRITE_OPERATION_IDS = [i for op, i in zip(OPERATIONS, OPERATION_IDS) if op[0] != "GET"]


def assert_untouched(db_session, client: OAuthClient) -> None:
    """The client is as it was, and no client was created."""
    row = stored(db_session, client.client_id)
    assert row is not None and row.name == client.name
    assert row.check_client_secret(DEFAULT_CLIENT_SECRET)
    assert client_events(db_session, client.client_id) == []
    assert db_session.scalars(select(AuditEvent).where(AuditEvent.action == "client.created")).all() == []


# --- who may call ---

@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=OPERATION_IDS)
def test_without_session_is_401(api, acme, method, path, body):
    response = api.request(method, base(acme.organization) + path.format(client_id=acme.client.client_id), json=body)
    assert response.status == 401
    assert response.error_type == "AUTHENTICATION_ERROR"


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=OPERATION_IDS)
def test_member_without_clients_permissions_is_403(api, db_session, acme, method, path, body):
    token = member_token(db_session, acme, "member")
    response = api.request(method, base(acme.organization) + path.format(client_id=acme.client.client_id),
                           json=body, token=token)
    assert response.status == 403
    assert response.error_type == "PERMISSION_DENIED"
    assert_untouched(db_session, acme.client)


@pytest.mark.parametrize(("method", "path", "body"), WRITE_OPERATIONS, ids=WRITE_OPERATION_IDS)
def test_writes_need_clients_write(api, db_session, acme, method, path, body):
    db_session.add(Role(organization_id=acme.organization.id, name="viewer", permissions=["clients:read"]))
    db_session.commit()
    token = member_token(db_session, acme, "viewer")
    assert api.get(base(acme.organization), token=token).status == 200

    response = api.request(method, base(acme.organization) + path.format(client_id=acme.client.client_id),
                           json=body, token=token)
    assert response.status == 403
    assert_untouched(db_session, acme.client)


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=OPERATION_IDS)
def test_non_member_is_404(api, db_session, acme, globex, method, path, body):
    response = api.request(method, base(acme.organization) + path.format(client_id=acme.client.client_id),
                           json=body, token=globex.token)
    assert response.status == 404
    assert response.error_type == "NOT_FOUND"
    assert_untouched(db_session, acme.client)


@pytest.mark.parametrize(("method", "path", "body"), CLIENT_OPERATIONS, ids=CLIENT_OPERATION_IDS)
def test_admin_of_one_organization_cannot_reach_anothers_client_by_either_path(api, db_session, acme, globex,
                                                                               method, path, body):
    admin_token = member_token(db_session, acme, "admin")
    for organization in (acme.organization, globex.organization):
        response = api.request(method, base(organization) + path.format(client_id=globex.client.client_id),
                               json=body, token=admin_token)
        assert response.status == 404, organization.slug
        assert response.error_type == "NOT_FOUND"
    assert_untouched(db_session, globex.client)


@pytest.mark.parametrize(("method", "path", "body"), CLIENT_OPERATIONS, ids=CLIENT_OPERATION_IDS)
def test_platform_client_is_404_under_every_organization_path(api, db_session, acme, globex, method, path, body):
    platform_client = OAuthClientFactory()
    for org in (acme, globex):
        response = api.request(method, base(org.organization) + path.format(client_id=platform_client.client_id),
                               json=body, token=org.token)
        assert response.status == 404, org.organization.slug
    assert_untouched(db_session, platform_client)


@pytest.mark.parametrize(("method", "path", "body"), CLIENT_OPERATIONS, ids=CLIENT_OPERATION_IDS)
def test_unknown_client_is_404(api, acme, method, path, body):
    response = api.request(method, base(acme.organization) + path.format(client_id="no-such-client"), json=body,
                           token=acme.token)
    assert response.status == 404


def test_malformed_organization_id_is_404(api, acme):
    response = api.get("/api/v1/organizations/not-a-uuid/clients", token=acme.token)
    assert response.status == 404
    assert response.error_type == "NOT_FOUND"


# --- POST ---

def test_create_client_belongs_to_the_organization_and_returns_secret_once(api, db_session, acme):
    response = api.post(base(acme.organization), json=web_app(), token=acme.token)

    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"  # the body carries a credential (RFC 6749 §5.1)
    data = response.data
    assert data["organization_id"] == str(acme.organization.id)
    assert data["organization_required"] is False and data["first_party"] is False
    client = stored(db_session, data["client_id"])
    assert client.organization_id == acme.organization.id
    assert client.check_client_secret(data["client_secret"])
    assert client_events(db_session, data["client_id"]) == [("client.created", acme.organization.id)]
    again = api.get(f"{base(acme.organization)}/{data['client_id']}", token=acme.token)
    assert "client_secret" not in again.data


def test_create_client_with_organization_required(api, db_session, acme):
    response = api.post(base(acme.organization), json=web_app(organization_required=True), token=acme.token)
    assert response.status == 201
    assert response.data["organization_required"] is True
    assert stored(db_session, response.data["client_id"]).organization_required is True


@pytest.mark.parametrize("first_party", [True, False])
def test_create_client_refuses_first_party_as_unknown_field(api, db_session, acme, first_party):
    response = api.post(base(acme.organization), json=web_app(first_party=first_party), token=acme.token)
    assert response.status == 422
    assert response.body["error"]["details"] == {"first_party": ["Unknown field."]}
    assert db_session.scalars(select(OAuthClient).where(OAuthClient.name == "Billing")).all() == []


def test_create_client_follows_the_platform_client_rules(api, db_session, acme):
    response = api.post(base(acme.organization), json=web_app(client_type="public",
                                                              grant_types=["client_credentials"],
                                                              scopes=["x:read"]), token=acme.token)
    assert response.status == 422
    assert "grant_types" in response.body["error"]["details"]


def test_admin_may_create_a_client(api, db_session, acme):
    response = api.post(base(acme.organization), json=web_app(), token=member_token(db_session, acme, "admin"))
    assert response.status == 201


def test_platform_admin_may_create_a_client_in_any_organization(api, db_session, acme):
    token = session_token(UserFactory(is_platform_admin=True))
    response = api.post(base(acme.organization), json=web_app(), token=token)
    assert response.status == 201
    assert response.data["organization_id"] == str(acme.organization.id)


# --- GET ---

def test_list_shows_the_organizations_clients_only(api, db_session, acme, globex):
    more = [OAuthClientFactory(organization_id=acme.organization.id) for _ in range(2)]
    OAuthClientFactory()

    response = api.get(f"{base(acme.organization)}?page=1&per_page=2", token=acme.token)
    following = api.get(f"{base(acme.organization)}?page=2&per_page=2", token=acme.token)

    assert response.status == 200
    assert response.body["meta"] == {"page": 1, "per_page": 2, "total": 3}
    listed = [c["client_id"] for c in response.data + following.data]
    assert listed == [acme.client.client_id, *(c.client_id for c in more)]
    assert all(c["organization_id"] == str(acme.organization.id) for c in response.data)
    assert all("client_secret" not in c for c in response.data)


@pytest.mark.parametrize("query", ["page=0", "per_page=101", "sort=name"])
def test_list_bad_query_is_422(api, acme, query):
    response = api.get(f"{base(acme.organization)}?{query}", token=acme.token)
    assert response.status == 422


def test_get_client(api, acme):
    response = api.get(f"{base(acme.organization)}/{acme.client.client_id}", token=acme.token)
    assert response.status == 200
    assert response.data["client_id"] == acme.client.client_id
    assert response.data["organization_id"] == str(acme.organization.id)


# --- PATCH ---

def test_update_client_changes_fields_and_audits_in_the_organization(api, db_session, acme):
    response = api.patch(f"{base(acme.organization)}/{acme.client.client_id}", token=acme.token,
                         json={"name": "Renamed", "organization_required": True})

    assert response.status == 200
    assert (response.data["name"], response.data["organization_required"]) == ("Renamed", True)
    client = stored(db_session, acme.client.client_id)
    assert (client.name, client.organization_required) == ("Renamed", True)
    assert client_events(db_session, client.client_id) == [("client.updated", acme.organization.id)]


def test_update_client_refuses_first_party(api, db_session, acme):
    response = api.patch(f"{base(acme.organization)}/{acme.client.client_id}", token=acme.token,
                         json={"first_party": True})
    assert response.status == 422
    assert response.body["error"]["details"] == {"first_party": ["Unknown field."]}
    assert stored(db_session, acme.client.client_id).first_party is False


def test_update_client_follows_the_platform_client_rules(api, db_session, acme):
    response = api.patch(f"{base(acme.organization)}/{acme.client.client_id}", token=acme.token,
                         json={"grant_types": ["refresh_token"]})
    assert response.status == 422
    assert "grant_types" in response.body["error"]["details"]
    assert_untouched(db_session, acme.client)


# --- DELETE ---

def test_delete_client_removes_it_and_audits_in_the_organization(api, db_session, acme):
    client_id = acme.client.client_id
    response = api.delete(f"{base(acme.organization)}/{client_id}", token=acme.token)

    assert response.status == 200
    assert stored(db_session, client_id) is None
    assert client_events(db_session, client_id) == [("client.deleted", acme.organization.id)]


# --- POST .../secret ---

def test_rotate_secret_returns_a_new_secret_and_audits_in_the_organization(api, db_session, acme):
    response = api.post(f"{base(acme.organization)}/{acme.client.client_id}/secret", token=acme.token)

    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    client = stored(db_session, acme.client.client_id)
    assert client.check_client_secret(response.data["client_secret"])
    assert not client.check_client_secret(DEFAULT_CLIENT_SECRET)
    assert client_events(db_session, client.client_id) == [("client.secret_rotated", acme.organization.id)]


def test_rotate_secret_of_public_client_is_409(api, db_session, acme):
    client = OAuthClientFactory(public=True, organization_id=acme.organization.id)
    response = api.post(f"{base(acme.organization)}/{client.client_id}/secret", token=acme.token)
    assert response.status == 409
    assert response.error_type == "CONFLICT"


# --- the clients work at the token endpoint ---

def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def client_credentials(client, db_session, client_id: str, secret: str):
    db_session.commit()  # the request must not wait for the test's transaction
    return client.post("/oauth2/token", data={"grant_type": "client_credentials", "scope": "reports:read"},
                       headers=basic(client_id, secret))


def test_organization_client_gets_tokens_and_a_rotation_takes_effect_at_once(api, client, db_session, acme):
    created = api.post(base(acme.organization), token=acme.token, json={
        "name": "Nightly export", "client_type": "confidential", "grant_types": ["client_credentials"],
        "scopes": ["reports:read"]}).data
    old_secret = created["client_secret"]

    response = client_credentials(client, db_session, created["client_id"], old_secret)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["access_token"]

    rotated = api.post(f"{base(acme.organization)}/{created['client_id']}/secret", token=acme.token).data
    # The cached client was invalidated by the rotation: the old secret stops working at once.
    assert client_credentials(client, db_session, created["client_id"], old_secret).status_code == 401
    assert client_credentials(client, db_session, created["client_id"], rotated["client_secret"]).status_code == 200


# --- the platform API sees every client ---

@pytest.fixture
def platform_admin_token(db_session) -> str:
    return session_token(UserFactory(is_platform_admin=True))


def test_platform_list_shows_each_clients_organization(api, db_session, acme, platform_admin_token):
    platform_client = OAuthClientFactory()
    response = api.get(PLATFORM_BASE, token=platform_admin_token)
    owners = {c["client_id"]: c["organization_id"] for c in response.data}
    assert owners == {acme.client.client_id: str(acme.organization.id), platform_client.client_id: None}


def test_platform_admin_cannot_make_an_organization_client_first_party(api, db_session, acme,
                                                                       platform_admin_token):
    response = api.patch(f"{PLATFORM_BASE}/{acme.client.client_id}", token=platform_admin_token,
                         json={"first_party": True})
    assert response.status == 422
    assert "first_party" in response.body["error"]["details"]
    assert_untouched(db_session, acme.client)


def test_platform_admin_changes_to_an_organization_client_land_in_its_trail(api, db_session, acme,
                                                                            platform_admin_token):
    response = api.patch(f"{PLATFORM_BASE}/{acme.client.client_id}", token=platform_admin_token,
                         json={"organization_required": True})
    assert response.status == 200 and response.data["organization_required"] is True
    assert client_events(db_session, acme.client.client_id) == [("client.updated", acme.organization.id)]


def test_platform_create_client_with_organization_required(api, db_session, platform_admin_token):
    response = api.post(PLATFORM_BASE, token=platform_admin_token, json=web_app(organization_required=True,
                                                                               first_party=True))
    assert response.status == 201
    assert response.data["organization_required"] is True and response.data["first_party"] is True
    assert response.data["organization_id"] is None


# --- OpenAPI ---

def test_organization_client_routes_are_documented_without_first_party(app):
    prefix = "/api/v1/organizations/{org_id}/clients"
    assert [r for r in undocumented_api_rules(app) if r.startswith("/api/v1/organizations/")] == []
    spec = build_spec(app)
    paths = spec["paths"]
    assert set(paths[prefix]) == {"get", "post"}
    assert set(paths[prefix + "/{client_id}"]) == {"get", "patch", "delete"}
    assert {"401", "403", "404", "409"} <= set(paths[prefix + "/{client_id}/secret"]["post"]["responses"])
    schemas = spec["components"]["schemas"]
    assert "first_party" not in schemas["OrganizationClientIn"]["properties"]
    assert "first_party" not in schemas["OrganizationClientUpdateIn"]["properties"]
    assert "organization_required" in schemas["OrganizationClientIn"]["properties"]
    assert {"organization_id", "organization_required"} <= set(schemas["ClientOut"]["properties"])
