"""/api/v1/organizations and /api/v1/users/me/organizations; account deletion and organizations."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.api.openapi import build_spec
from app.models import AuditEvent, Membership, OAuthClient, Organization, Role, User
from app.services import organizations
from tests import factories
from tests.factories import DEFAULT_PASSWORD

BASE = "/api/v1/organizations"
ORG_FIELDS = {"id", "slug", "name", "settings", "created_at", "updated_at"}


def member_of(db_session, org, role="member", **kwargs):
    user = factories.UserFactory(**kwargs)
    factories.add_member(db_session, org, user, role)
    return user


def actions(db_session, organization_id):
    return list(db_session.scalars(select(AuditEvent.action).where(AuditEvent.organization_id == organization_id)
                                   .order_by(AuditEvent.occurred_at)))


# --- POST /organizations ---

def test_create_organization_makes_the_caller_its_owner(api, db_session, owner):
    response = api.post(BASE, json={"name": "Globex", "slug": "globex", "settings": {"invitation_ttl_hours": 24}},
                        token=factories.session_token(owner))

    assert response.status == 201
    assert set(response.data) == ORG_FIELDS
    assert (response.data["name"], response.data["slug"], response.data["settings"]) == (
        "Globex", "globex", {"invitation_ttl_hours": 24})
    org_id = uuid.UUID(response.data["id"])
    assert organizations.get_membership(db_session, organization_id=org_id, user_id=owner.id).role.name == "owner"
    assert actions(db_session, org_id) == ["org.created"]


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "Globex"}, "slug"),
    ({"slug": "globex"}, "name"),
    ({"name": "Globex", "slug": "Globex"}, "slug"),
    ({"name": "Globex", "slug": "globex", "settings": {"colour": "red"}}, "colour"),
    ({"name": "Globex", "slug": "globex", "owner_id": "x"}, "owner_id"),
])
def test_create_organization_with_bad_fields_is_422(api, db_session, owner, body, field):
    response = api.post(BASE, json=body, token=factories.session_token(owner))
    assert response.status == 422 and response.error_type == "VALIDATION_ERROR"
    assert field in response.body["error"]["details"]
    assert db_session.scalar(select(func.count()).select_from(Organization)) == 0


def test_create_organization_with_a_taken_slug_is_409(api, owner, org):
    response = api.post(BASE, json={"name": "Other", "slug": "acme"}, token=factories.session_token(owner))
    assert response.status == 409 and response.error_type == "CONFLICT"


def test_create_organization_needs_an_api_session(app, api, owner):
    assert api.post(BASE, json={"name": "Globex", "slug": "globex"}).status == 401
    # An org:admin access token acts within its organization; it cannot create one.
    token = factories.access_token(app, user=owner)
    assert api.post(BASE, json={"name": "Globex", "slug": "globex"}, token=token).status == 401


# --- GET / PATCH / DELETE /organizations/<id> ---

def test_get_organization_as_a_member(api, db_session, org):
    response = api.get(f"{BASE}/{org.id}", token=factories.session_token(member_of(db_session, org)))
    assert response.status == 200
    assert set(response.data) == ORG_FIELDS and response.data["slug"] == "acme"


@pytest.mark.parametrize("org_id", [lambda org: str(uuid.uuid4()), lambda org: "acme", lambda org: str(org.id)])
def test_get_organization_answers_404_alike_to_outsiders(api, db_session, org, org_id):
    response = api.get(f"{BASE}/{org_id(org)}", token=factories.session_token(factories.UserFactory()))
    assert response.status == 404 and response.error_type == "NOT_FOUND"
    assert response.body["message"] == "Organization not found."


def test_platform_admin_sees_any_organization(api, db_session, org):
    admin = factories.UserFactory(is_platform_admin=True)
    assert api.get(f"{BASE}/{org.id}", token=factories.session_token(admin)).status == 200


def test_update_organization_as_admin(api, db_session, org):
    token = factories.session_token(member_of(db_session, org, "admin"))
    response = api.patch(f"{BASE}/{org.id}", json={"name": "Acme Ltd", "settings": {"invitation_ttl_hours": 12}},
                         token=token)

    assert response.status == 200
    assert (response.data["name"], response.data["settings"]) == ("Acme Ltd", {"invitation_ttl_hours": 12})
    assert actions(db_session, org.id)[-1] == "org.updated"


def test_update_organization_as_member_is_403(api, db_session, org):
    response = api.patch(f"{BASE}/{org.id}", json={"name": "Mine"},
                         token=factories.session_token(member_of(db_session, org)))
    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"
    db_session.expire_all()
    assert db_session.get(Organization, org.id).name == "Acme Corp"


def test_update_organization_to_a_taken_slug_is_409(api, db_session, owner, org):
    factories.create_organization(db_session, owner=owner, slug="globex")
    response = api.patch(f"{BASE}/{org.id}", json={"slug": "globex"}, token=factories.session_token(owner))
    assert response.status == 409 and response.body["error"]["details"] == {"slug": ["Taken."]}


def test_delete_organization_as_owner_removes_what_it_owns(api, db_session, owner, org):
    member_of(db_session, org, "admin")
    client_pk = factories.OAuthClientFactory(organization_id=org.id).id
    org_id = org.id

    response = api.delete(f"{BASE}/{org_id}", token=factories.session_token(owner))

    assert response.status == 200
    assert db_session.get(Organization, org_id) is None
    for model in (Membership, Role):
        assert db_session.scalar(select(func.count()).select_from(model).where(model.organization_id == org_id)) == 0
    assert db_session.get(OAuthClient, client_pk) is None
    assert "org.deleted" in actions(db_session, org_id)


def test_delete_organization_as_admin_is_403(api, db_session, org):
    response = api.delete(f"{BASE}/{org.id}", token=factories.session_token(member_of(db_session, org, "admin")))
    assert response.status == 403
    assert db_session.get(Organization, org.id) is not None


# --- GET /users/me/organizations ---

def test_my_organizations_lists_role_and_permissions(api, db_session, owner, org):
    other = factories.create_organization(db_session, owner=factories.UserFactory(), slug="zeta", name="Zeta")
    factories.add_member(db_session, other, owner, "member")
    factories.create_organization(db_session, owner=factories.UserFactory(), slug="elsewhere")

    response = api.get("/api/v1/users/me/organizations", token=factories.session_token(owner))

    assert response.status == 200
    [acme, zeta] = response.data
    assert set(acme) == {"organization", "role", "permissions", "joined_at"}
    assert acme["organization"] == {"id": str(org.id), "slug": "acme", "name": "Acme Corp"}
    assert acme["role"] == {"id": str(organizations.builtin_role(db_session, org.id, "owner").id), "name": "owner"}
    assert acme["permissions"] == sorted(organizations.ALL_PERMISSIONS)
    assert (zeta["organization"]["slug"], zeta["role"]["name"], zeta["permissions"]) == (
        "zeta", "member", ["members:read", "org:read", "roles:read"])


def test_my_organizations_is_empty_for_a_new_user(api, db_session):
    response = api.get("/api/v1/users/me/organizations", token=factories.session_token(factories.UserFactory()))
    assert (response.status, response.data) == (200, [])


def test_my_organizations_needs_a_session(api):
    assert api.get("/api/v1/users/me/organizations").status == 401


# --- DELETE /users/me and organizations ---

def test_deleting_the_account_of_a_sole_owner_is_409_with_the_slugs(api, db_session, owner, org):
    response = api.delete("/api/v1/users/me", json={"password": DEFAULT_PASSWORD},
                          token=factories.session_token(owner))

    assert response.status == 409 and response.error_type == "CONFLICT"
    assert response.body["error"]["details"] == {"organizations": ["acme"]}
    assert db_session.get(User, owner.id) is not None


def test_deleting_an_account_leaves_its_organizations_cleanly(api, db_session, owner, org):
    member = member_of(db_session, org, "admin")
    member_id = member.id

    response = api.delete("/api/v1/users/me", json={"password": DEFAULT_PASSWORD},
                          token=factories.session_token(member))

    assert response.status == 200
    assert organizations.get_membership(db_session, organization_id=org.id, user_id=member_id) is None
    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "membership.removed")).all()
    assert (event.organization_id, event.details) == (org.id, {"reason": "account_deleted"})


# --- OpenAPI ---

def test_organization_operations_are_documented_under_their_tag(app):
    spec = build_spec(app)
    paths = ["/api/v1/organizations", "/api/v1/organizations/{org_id}", "/api/v1/users/me/organizations",
             "/api/v1/organizations/{org_id}/members", "/api/v1/organizations/{org_id}/members/{user_id}",
             "/api/v1/organizations/{org_id}/members/{user_id}/role", "/api/v1/organizations/{org_id}/roles",
             "/api/v1/organizations/{org_id}/roles/{role_id}"]
    for path in paths:
        for operation in spec["paths"][path].values():
            assert operation["tags"] == ["organizations"], path
    roles_doc = spec["paths"]["/api/v1/organizations/{org_id}/roles"]["post"]["description"]
    assert all(f"`{permission}`" in roles_doc for permission in organizations.PERMISSIONS)
