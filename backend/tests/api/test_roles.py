"""/api/v1/organizations/<org_id>/roles: list roles, define, change and delete custom ones."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.models import AuditEvent, Role
from app.services import organizations
from tests import factories

ROLE_FIELDS = {"id", "name", "description", "builtin", "permissions", "member_count", "created_at", "updated_at"}


@pytest.fixture
def admin_token(db_session, org):
    admin = factories.UserFactory()
    factories.add_member(db_session, org, admin, "admin")
    return factories.session_token(admin)


@pytest.fixture
def support(db_session, org):
    return factories.create_role(db_session, org, "support", ["members:read", "org:read"], description="Helps")


def roles_url(org, role_id=None):
    url = f"/api/v1/organizations/{org.id}/roles"
    return f"{url}/{role_id}" if role_id else url


def audit_actions(db_session):
    return list(db_session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("role.%"))))


# --- GET /roles ---

def test_list_roles_as_member(api, db_session, org, support):
    member = factories.UserFactory()
    factories.add_member(db_session, org, member, "member")

    response = api.get(roles_url(org), token=factories.session_token(member))

    assert response.status == 200
    assert [(r["name"], r["builtin"], r["member_count"]) for r in response.data] == [
        ("owner", True, 1), ("admin", True, 0), ("member", True, 1), ("support", False, 0)]
    assert set(response.data[0]) == ROLE_FIELDS
    assert response.data[0]["permissions"] == sorted(organizations.ALL_PERMISSIONS)
    assert response.data[3]["permissions"] == ["members:read", "org:read"]


# --- POST /roles ---

def test_create_role(api, db_session, org, admin_token):
    response = api.post(roles_url(org), json={"name": "auditor", "description": "Reads the trail",
                                              "permissions": ["audit:read", "org:read"]}, token=admin_token)

    assert response.status == 201
    assert set(response.data) == ROLE_FIELDS
    assert (response.data["name"], response.data["builtin"], response.data["permissions"],
            response.data["member_count"]) == ("auditor", False, ["audit:read", "org:read"], 0)
    assert db_session.get(Role, uuid.UUID(response.data["id"])).permissions == ["audit:read", "org:read"]
    assert audit_actions(db_session) == ["role.created"]


@pytest.mark.parametrize("name", ["admin", "support"])
def test_create_role_with_a_taken_name_is_409(api, db_session, org, owner_token, support, name):
    response = api.post(roles_url(org), json={"name": name, "permissions": []}, token=owner_token)
    assert response.status == 409 and response.error_type == "CONFLICT"


def test_create_role_with_unknown_permissions_lists_them(api, org, owner_token):
    response = api.post(roles_url(org), json={"name": "x", "permissions": ["org:read", "org:own"]}, token=owner_token)
    assert response.status == 422
    assert response.body["error"]["details"] == {"permissions": ["Unknown permissions: org:own."]}


@pytest.mark.parametrize("body", [{"permissions": []}, {"name": "Bad Name", "permissions": []},
                                  {"name": "x", "permissions": "org:read"},
                                  {"name": "x", "permissions": [], "builtin": True}])
def test_create_role_with_bad_body_is_422(api, org, owner_token, body):
    response = api.post(roles_url(org), json=body, token=owner_token)
    assert response.status == 422 and response.error_type == "VALIDATION_ERROR"


def test_admin_cannot_create_a_role_with_org_delete(api, db_session, org, admin_token):
    response = api.post(roles_url(org), json={"name": "deleter", "permissions": ["org:delete"]}, token=admin_token)
    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"
    assert db_session.scalar(select(Role).where(Role.name == "deleter")) is None


# --- PATCH /roles/<role_id> ---

def test_update_role(api, db_session, org, admin_token, support):
    response = api.patch(roles_url(org, support.id), json={"description": "Front line",
                                                           "permissions": ["members:read"]}, token=admin_token)

    assert response.status == 200
    assert (response.data["description"], response.data["permissions"]) == ("Front line", ["members:read", "org:read"])
    assert audit_actions(db_session) == ["role.updated"]


def test_built_in_roles_cannot_be_changed(api, db_session, org, owner_token):
    role = organizations.builtin_role(db_session, org.id, "member")
    response = api.patch(roles_url(org, role.id), json={"description": "Mine"}, token=owner_token)
    assert response.status == 409 and response.error_type == "CONFLICT"


def test_admin_cannot_edit_a_role_allowing_more_than_theirs(api, db_session, org, admin_token):
    deleter = Role(organization_id=org.id, name="deleter", permissions=["org:delete"])
    db_session.add(deleter)
    db_session.commit()
    response = api.patch(roles_url(org, deleter.id), json={"description": "Mine"}, token=admin_token)
    assert response.status == 403


# --- DELETE /roles/<role_id> ---

def test_delete_role(api, db_session, org, owner_token, support):
    role_id = support.id
    response = api.delete(roles_url(org, role_id), token=owner_token)
    assert response.status == 200
    assert db_session.get(Role, role_id) is None
    assert audit_actions(db_session) == ["role.deleted"]


def test_a_role_in_use_cannot_be_deleted(api, db_session, org, owner_token, support):
    factories.add_member(db_session, org, factories.UserFactory(), "support")
    response = api.delete(roles_url(org, support.id), token=owner_token)
    assert response.status == 409
    assert response.body["error"]["details"] == {"member_count": 1}
    assert "1 member" in response.body["message"]


def test_built_in_roles_cannot_be_deleted(api, db_session, org, owner_token):
    role = organizations.builtin_role(db_session, org.id, "admin")
    response = api.delete(roles_url(org, role.id), token=owner_token)
    assert response.status == 409
    assert db_session.get(Role, role.id) is not None


def test_another_organizations_role_is_404(api, db_session, owner, org, owner_token):
    other = factories.create_organization(db_session, owner=owner, slug="globex")
    foreign = Role(organization_id=other.id, name="support", permissions=[])
    db_session.add(foreign)
    db_session.commit()
    response = api.delete(roles_url(org, foreign.id), token=owner_token)
    assert response.status == 404 and response.body["message"] == "Role not found."
