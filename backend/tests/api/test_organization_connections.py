"""/api/v1/organizations/<org_id>/identity-providers: an organization's admins connect its own identity
providers. Who may call what, and another organization's connection being 404, are in the tenant-isolation
matrix (tests/api/test_tenant_isolation.py); here, what the calls do."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.models import AuditEvent, IdentityProvider
from tests import factories
from tests.saml_idp import TestIdP

IDP = TestIdP()
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def saml(**overrides: Any) -> dict[str, Any]:
    return {"kind": "saml", "name": "Acme SSO", "idp_entity_id": IDP.entity_id, "idp_sso_url": IDP.sso_url,
            "idp_certificates": [IDP.certificate_pem]} | overrides


@pytest.fixture
def acme(db_session):
    owner = factories.UserFactory(email="owner@acme.example")
    admin = factories.UserFactory(email="admin@acme.example")
    organization = factories.create_organization(db_session, owner=owner, slug="acme")
    factories.add_member(db_session, organization, admin, "admin")
    factories.create_role(db_session, organization, "engineer", ["members:read"])
    return organization, factories.session_token(admin)


def base(organization) -> str:
    return f"/api/v1/organizations/{organization.id}/identity-providers"


def test_admin_connects_a_saml_idp_owned_by_the_organization(api, acme, settings, db_session):
    organization, token = acme
    response = api.post(base(organization), token=token,
                        json=saml(default_role="engineer", group_role_map={"Admins": "admin"}))
    assert response.status == 201, response.body
    data = response.data
    assert data["organization_id"] == str(organization.id) and data["kind"] == "saml"
    assert data["acs_url"] == f"{settings.ISSUER}/saml/{data['id']}/acs"
    assert data["default_role"] == "engineer" and data["group_role_map"] == {"Admins": "admin"}
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "identity_provider.created"))
    assert event.organization_id == organization.id


def test_list_shows_only_the_organizations_own_connections(api, acme, db_session):
    organization, token = acme
    own = api.post(base(organization), token=token, json=saml()).data
    db_session.add(IdentityProvider(kind="github", name="Platform GitHub", client_id="x", scopes=[],
                                    settings={"base_url": "https://github.com"}))
    db_session.commit()
    response = api.get(base(organization), token=token)
    assert response.status == 200
    assert [item["id"] for item in response.data] == [own["id"]]


def test_a_platform_provider_is_404_under_the_organization(api, acme, db_session):
    organization, token = acme
    platform = IdentityProvider(kind="github", name="Platform GitHub", client_id="x", scopes=[],
                                settings={"base_url": "https://github.com"})
    db_session.add(platform)
    db_session.commit()
    for method in ("GET", "PATCH", "DELETE"):
        response = api.request(method, f"{base(organization)}/{platform.id}", token=token,
                               json={"name": "Mine now"} if method == "PATCH" else None)
        assert response.status == 404, (method, response.body)
    assert db_session.get(IdentityProvider, platform.id).name == "Platform GitHub"


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "github", "name": "GitHub", "client_id": "x", "client_secret": "y"}, "kind"),
    ({"kind": "google", "name": "Google", "client_id": "x", "client_secret": "y"}, "kind"),
    ({"kind": "microsoft", "name": "Entra", "client_id": "x", "client_secret": "y", "tenant": "common",
      "allow_any_tenant": True}, "tenant"),
    (saml(default_role="auditor"), "default_role"),
    (saml(group_role_map={"Admins": "no-such-role"}), "group_role_map"),
    (saml(default_role="owner"), "default_role"),
])
def test_create_refuses_what_an_organization_may_not_connect(api, acme, db_session, body, field):
    organization, token = acme
    response = api.post(base(organization), token=token, json=body)
    assert response.status == 422, response.body
    assert field in response.body["error"]["details"]
    assert db_session.scalar(select(IdentityProvider)) is None


def test_create_accepts_a_single_tenant_microsoft_connection(api, acme):
    organization, token = acme
    response = api.post(base(organization), token=token, json={
        "kind": "microsoft", "name": "Entra", "client_id": "x", "client_secret": "y", "tenant": TENANT})
    assert response.status == 201, response.body


def test_patch_changes_the_connection_and_checks_roles(api, acme, db_session):
    organization, token = acme
    created = api.post(base(organization), token=token, json=saml()).data
    refused = api.patch(f"{base(organization)}/{created['id']}", token=token, json={"default_role": "nobody"})
    assert refused.status == 422 and "default_role" in refused.body["error"]["details"]
    changed = api.patch(f"{base(organization)}/{created['id']}", token=token,
                        json={"default_role": "engineer", "enabled": False})
    assert changed.status == 200, changed.body
    assert changed.data["default_role"] == "engineer" and changed.data["enabled"] is False


def test_delete_removes_the_connection(api, acme, db_session):
    organization, token = acme
    created = api.post(base(organization), token=token, json=saml()).data
    response = api.delete(f"{base(organization)}/{created['id']}", token=token)
    assert response.status == 200, response.body
    assert db_session.get(IdentityProvider, uuid.UUID(created["id"])) is None


# --- the membership settings of every kind an organization connects ------------------------------------

def entra(**overrides: Any) -> dict[str, Any]:
    return {"kind": "microsoft", "name": "Entra", "client_id": "x", "client_secret": "y", "tenant": TENANT} | overrides


def test_an_openid_connection_takes_the_membership_settings_with_their_defaults(api, acme):
    organization, token = acme
    plain = api.post(base(organization), token=token, json=entra())
    assert plain.status == 201, plain.body
    assert {field: plain.data[field] for field in ("attribute_mapping", "default_role", "group_role_map",
                                                     "jit_membership")} == \
        {"attribute_mapping": {}, "default_role": "member", "group_role_map": {}, "jit_membership": True}
    mapped = api.post(base(organization), token=token, json=entra(
        attribute_mapping={"groups": "roles"}, default_role="engineer", group_role_map={"Admins": "admin"},
        jit_membership=False))
    assert mapped.status == 201, mapped.body
    assert mapped.data["attribute_mapping"] == {"groups": "roles"} and mapped.data["jit_membership"] is False


@pytest.mark.parametrize(("body", "field"), [
    (entra(group_role_map={"Admins": "owner"}), "group_role_map"),
    (entra(default_role="owner"), "default_role"),
    (entra(attribute_mapping={"email": "upn"}), "attribute_mapping"),
    (entra(group_role_map={"Admins": "no-such-role"}), "group_role_map"),
])
def test_an_openid_connections_membership_settings_are_checked(api, acme, db_session, body, field):
    organization, token = acme
    response = api.post(base(organization), token=token, json=body)
    assert response.status == 422, response.body
    assert field in response.body["error"]["details"]
    assert db_session.scalar(select(IdentityProvider)) is None


def test_patch_cannot_map_a_group_to_owner(api, acme, db_session):
    organization, token = acme
    created = api.post(base(organization), token=token, json=entra()).data
    response = api.patch(f"{base(organization)}/{created['id']}", token=token, json={"group_role_map": {"g": "owner"}})
    assert response.status == 422 and "group_role_map" in response.body["error"]["details"]


def test_a_platform_provider_refuses_the_membership_settings(api, db_session):
    admin = factories.session_token(factories.UserFactory(is_platform_admin=True))
    response = api.post("/api/v1/identity-providers", token=admin, json=entra(default_role="member"))
    assert response.status == 422, response.body
    assert "organization's own connections" in response.body["error"]["details"]["default_role"][0]
