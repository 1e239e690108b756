"""/api/v1/organizations/<org_id>/members: list, add, change role, remove and leave."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditEvent, RefreshToken, Role
from app.services import organizations
from tests import factories

MEMBER_FIELDS = {"user_id", "email", "name", "role", "joined_at"}


def members_url(org, user_id=None, suffix=""):
    url = f"/api/v1/organizations/{org.id}/members"
    return f"{url}/{user_id}{suffix}" if user_id else url


def role_of(db_session, org, user):
    db_session.expire_all()
    membership = organizations.get_membership(db_session, organization_id=org.id, user_id=user.id)
    return membership.role.name if membership else None


def actions(db_session):
    return list(db_session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("membership.%"))))


# --- GET /members ---

def test_list_members_pages_by_email(api, db_session, org, owner, admin, member):
    response = api.get(members_url(org), query_string={"per_page": 2}, token=factories.session_token(member))

    assert response.status == 200
    assert response.body["meta"] == {"page": 1, "per_page": 2, "total": 3}
    assert [m["email"] for m in response.data] == ["admin@example.com", "member@example.com"]
    first = response.data[0]
    assert set(first) == MEMBER_FIELDS
    admin_role = organizations.builtin_role(db_session, org.id, "admin")
    assert (first["user_id"], first["name"], first["role"]) == (
        str(admin.id), "Ada Admin", {"id": str(admin_role.id), "name": "admin", "builtin": True})


@pytest.mark.parametrize(("query", "emails"), [
    ({"role": "owner"}, ["owner@example.com"]),
    ({"q": "MAX"}, ["member@example.com"]),
    ({"q": "admin@", "role": "member"}, []),
    ({"q": "", "role": ""}, ["admin@example.com", "member@example.com", "owner@example.com"]),
])
def test_list_members_filters(api, db_session, org, owner, admin, member, query, emails):
    response = api.get(members_url(org), query_string=query, token=factories.session_token(owner))
    assert [m["email"] for m in response.data] == emails
    assert response.body["meta"]["total"] == len(emails)


@pytest.mark.parametrize("query", [{"per_page": 101}, {"page": 0}, {"q": "x" * 201}, {"sort": "email"}])
def test_list_members_with_bad_query_is_422(api, org, owner, query):
    response = api.get(members_url(org), query_string=query, token=factories.session_token(owner))
    assert response.status == 422 and response.error_type == "VALIDATION_ERROR"


def test_list_members_needs_members_read(api, db_session, org):
    role = Role(organization_id=org.id, name="reader", permissions=["org:read"])
    db_session.add(role)
    db_session.commit()
    user = factories.UserFactory()
    factories.add_member(db_session, org, user, "reader")
    response = api.get(members_url(org), token=factories.session_token(user))
    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"


# --- POST /members ---

def test_add_member_returns_the_membership(api, db_session, org, owner):
    newcomer = factories.UserFactory(email="new@example.com", name="Nina New")

    response = api.post(members_url(org), json={"email": "New@Example.com", "role": "admin"},
                        token=factories.session_token(owner))

    assert response.status == 201
    assert set(response.data) == MEMBER_FIELDS
    assert (response.data["user_id"], response.data["email"], response.data["role"]["name"]) == (
        str(newcomer.id), "new@example.com", "admin")
    assert role_of(db_session, org, newcomer) == "admin"
    assert actions(db_session) == ["membership.added"]


def test_add_member_by_role_id(api, db_session, org, owner):
    newcomer = factories.UserFactory(email="new@example.com")
    role = organizations.builtin_role(db_session, org.id, "member")
    response = api.post(members_url(org), json={"email": "new@example.com", "role": str(role.id)},
                        token=factories.session_token(owner))
    assert response.status == 201 and role_of(db_session, org, newcomer) == "member"


def test_add_member_with_another_organizations_role_is_422(api, db_session, org, owner):
    other = factories.create_organization(db_session, owner=owner, slug="globex")
    newcomer = factories.UserFactory(email="new@example.com")
    foreign = organizations.builtin_role(db_session, other.id, "owner")

    response = api.post(members_url(org), json={"email": "new@example.com", "role": str(foreign.id)},
                        token=factories.session_token(owner))

    assert response.status == 422 and "role" in response.body["error"]["details"]
    assert role_of(db_session, org, newcomer) is None


def test_add_member_with_unknown_email_is_404(api, org, owner):
    response = api.post(members_url(org), json={"email": "nobody@example.com", "role": "member"},
                        token=factories.session_token(owner))
    assert response.status == 404 and response.body["message"] == "No user with this email."


def test_add_an_existing_member_is_409(api, db_session, org, owner, member):
    response = api.post(members_url(org), json={"email": member.email, "role": "admin"},
                        token=factories.session_token(owner))
    assert response.status == 409 and response.error_type == "CONFLICT"
    assert role_of(db_session, org, member) == "member"


def test_admin_cannot_add_an_owner(api, db_session, org, admin):
    newcomer = factories.UserFactory(email="new@example.com")
    response = api.post(members_url(org), json={"email": "new@example.com", "role": "owner"},
                        token=factories.session_token(admin))
    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"
    assert role_of(db_session, org, newcomer) is None


@pytest.mark.parametrize("body", [{"email": "new@example.com"}, {"email": "not-an-email", "role": "member"},
                                  {"email": "new@example.com", "role": "member", "note": "hi"}])
def test_add_member_with_bad_body_is_422(api, org, owner, body):
    response = api.post(members_url(org), json=body, token=factories.session_token(owner))
    assert response.status == 422 and response.error_type == "VALIDATION_ERROR"


# --- PATCH /members/<user_id>/role ---

def test_change_member_role(api, db_session, org, owner, member):
    response = api.patch(members_url(org, member.id, "/role"), json={"role": "admin"},
                         token=factories.session_token(owner))

    assert response.status == 200
    assert response.data["role"]["name"] == "admin"
    assert role_of(db_session, org, member) == "admin"
    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "membership.role_changed")).all()
    assert (event.organization_id, event.details) == (org.id, {"old_role": "member", "new_role": "admin"})


def test_the_last_owner_cannot_step_down(api, db_session, org, owner):
    response = api.patch(members_url(org, owner.id, "/role"), json={"role": "member"},
                         token=factories.session_token(owner))
    assert response.status == 409 and response.error_type == "CONFLICT"
    assert role_of(db_session, org, owner) == "owner"


def test_a_platform_admin_cannot_remove_or_demote_the_last_owner(api, db_session, org, owner):
    operator = factories.session_token(factories.UserFactory(is_platform_admin=True))
    demoted = api.patch(members_url(org, owner.id, "/role"), json={"role": "member"}, token=operator)
    removed = api.delete(members_url(org, owner.id), token=operator)
    assert (demoted.status, removed.status) == (409, 409)
    assert role_of(db_session, org, owner) == "owner"


@pytest.mark.parametrize(("target", "role"), [("member", "owner"), ("owner", "member")])
def test_admin_cannot_grant_or_take_away_the_owner_role(api, db_session, org, owner, admin, member, target, role):
    factories.add_member(db_session, org, factories.UserFactory(), "owner")  # never the last owner here
    user = {"member": member, "owner": owner}[target]
    before = role_of(db_session, org, user)

    response = api.patch(members_url(org, user.id, "/role"), json={"role": role},
                         token=factories.session_token(admin))

    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"
    assert role_of(db_session, org, user) == before


def test_admin_cannot_assign_a_custom_role_above_theirs(api, db_session, org, admin, member):
    db_session.add(Role(organization_id=org.id, name="deleter", permissions=["org:delete"]))
    response = api.patch(members_url(org, member.id, "/role"), json={"role": "deleter"},
                         token=factories.session_token(admin))
    assert response.status == 403
    assert role_of(db_session, org, member) == "member"


def test_change_role_of_a_non_member_is_404(api, db_session, org, owner):
    stranger = factories.UserFactory()
    response = api.patch(members_url(org, stranger.id, "/role"), json={"role": "admin"},
                         token=factories.session_token(owner))
    assert response.status == 404 and response.body["message"] == "Member not found."


# --- DELETE /members/<user_id> ---

def test_remove_member_revokes_their_refresh_tokens_in_the_organization(api, db_session, org, owner, member):
    token_row = factories.issue_refresh_token(db_session, client=factories.OAuthClientFactory(), user=member,
                                              organization=org)

    response = api.delete(members_url(org, member.id), token=factories.session_token(owner))

    assert response.status == 200
    assert role_of(db_session, org, member) is None
    assert db_session.get(RefreshToken, token_row.id).revoked_at is not None
    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "membership.removed")).all()
    assert event.details == {"role": "member", "reason": "removed", "refresh_tokens_revoked": 1}


def test_a_member_may_leave(api, db_session, org, member):
    response = api.delete(members_url(org, member.id), token=factories.session_token(member))
    assert response.status == 200
    assert role_of(db_session, org, member) is None


def test_a_member_cannot_remove_someone_else(api, db_session, org, admin, member):
    response = api.delete(members_url(org, admin.id), token=factories.session_token(member))
    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"
    assert role_of(db_session, org, admin) == "admin"


def test_the_last_owner_cannot_leave(api, db_session, org, owner):
    response = api.delete(members_url(org, owner.id), token=factories.session_token(owner))
    assert response.status == 409 and response.error_type == "CONFLICT"
    assert role_of(db_session, org, owner) == "owner"


def test_admin_cannot_remove_an_owner(api, db_session, org, owner, admin):
    factories.add_member(db_session, org, factories.UserFactory(), "owner")
    response = api.delete(members_url(org, owner.id), token=factories.session_token(admin))
    assert response.status == 403
    assert role_of(db_session, org, owner) == "owner"


@pytest.mark.parametrize("who", ["a user of no organization", "a malformed id"])
def test_remove_a_non_member_is_404(api, db_session, org, owner, who):
    user_id = str(factories.UserFactory().id) if who == "a user of no organization" else "not-a-user-id"
    response = api.delete(members_url(org, user_id), token=factories.session_token(owner))
    assert response.status == 404 and response.error_type == "NOT_FOUND"
