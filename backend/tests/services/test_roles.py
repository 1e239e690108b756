"""services.roles: listing roles and defining, changing and deleting custom ones."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app import errors
from app.models import AuditEvent, Role
from app.services import organizations, roles
from app.services.actor import Actor
from tests import factories


@pytest.fixture
def support(db_session, org):
    return factories.create_role(db_session, org, "support", ["members:read", "org:read"], description="Helps")


def access_of(db_session, user, org):
    return organizations.require_access(db_session, user=user, organization_id=org.id, permission="org:read")


def create(db_session, user, org, **kwargs):
    values = {"name": "auditor", "permissions": ["audit:read"], **kwargs}
    return roles.create_role(db_session, actor=Actor(user=user), access=access_of(db_session, user, org), **values)


def update(db_session, user, org, role_id, **changes):
    return roles.update_role(db_session, actor=Actor(user=user), access=access_of(db_session, user, org),
                             role_id=role_id, **changes)


def delete(db_session, user, org, role_id):
    roles.delete_role(db_session, actor=Actor(user=user), access=access_of(db_session, user, org), role_id=role_id)


def events(db_session, action):
    return db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


# --- list_roles ---

def test_list_roles_puts_built_ins_first_with_their_permissions_from_code(db_session, org, admin, support):
    factories.add_member(db_session, org, factories.UserFactory(), "support")
    zed = Role(organization_id=org.id, name="zed", permissions=["org:read"])
    db_session.add(zed)
    db_session.commit()

    listed = roles.list_roles(db_session, organization_id=org.id)

    assert [(d.role.name, d.member_count) for d in listed] == [("owner", 1), ("admin", 1), ("member", 0),
                                                              ("support", 1), ("zed", 0)]
    assert listed[1].permissions == sorted(organizations.BUILTIN_ROLES["admin"][1])
    assert listed[3].permissions == ["members:read", "org:read"]


# --- create_role ---

def test_create_role_stores_sorted_unique_permissions_and_records_it(db_session, owner, org):
    details = create(db_session, owner, org, description="Reads the trail",
                     permissions=["org:read", "audit:read", "org:read"])
    db_session.commit()

    role = db_session.get(Role, details.role.id)
    assert (role.name, role.description, role.builtin, role.permissions) == (
        "auditor", "Reads the trail", False, ["audit:read", "org:read"])
    assert (details.permissions, details.member_count) == (["audit:read", "org:read"], 0)
    [event] = events(db_session, "role.created")
    assert (event.organization_id, event.target_type, event.target_id, event.details) == (
        org.id, "role", str(role.id), {"name": "auditor", "permissions": ["audit:read", "org:read"]})


@pytest.mark.parametrize("name", ["Auditor", "-auditor", "audit or", "a" * 65, str(uuid.uuid4())])
def test_create_role_with_a_bad_name_is_invalid(db_session, owner, org, name):
    with pytest.raises(errors.ValidationFailed) as err:
        create(db_session, owner, org, name=name)
    assert "name" in err.value.details


@pytest.mark.parametrize("name", ["owner", "admin", "member", "support"])
def test_create_role_with_a_taken_name_is_a_conflict(db_session, owner, org, support, name):
    with pytest.raises(errors.Conflict):
        create(db_session, owner, org, name=name)


def test_create_role_lists_unknown_permissions(db_session, owner, org):
    with pytest.raises(errors.ValidationFailed) as err:
        create(db_session, owner, org, permissions=["org:read", "org:own", "billing:pay"])
    assert err.value.details == {"permissions": ["Unknown permissions: billing:pay, org:own."]}


def test_admin_cannot_create_a_role_with_permissions_they_lack(db_session, org, admin):
    with pytest.raises(errors.PermissionDenied, match="org:delete"):
        create(db_session, admin, org, permissions=["org:read", "org:delete"])
    assert events(db_session, "role.created") == []


def test_admin_creates_a_role_within_their_permissions(db_session, org, admin):
    assert create(db_session, admin, org, permissions=["members:invite", "org:read"]).role.name == "auditor"


def test_owner_creates_a_role_with_any_permission(db_session, owner, org):
    # org:read comes with every membership (MEMBERSHIP_PERMISSIONS).
    assert create(db_session, owner, org, permissions=["org:delete"]).permissions == ["org:delete", "org:read"]


def test_a_custom_role_always_allows_reading_and_leaving_the_organization(db_session, owner, org):
    details = create(db_session, owner, org, permissions=["audit:read"])
    assert details.role.permissions == ["audit:read"]
    assert organizations.role_permissions(details.role) == {"audit:read", "org:read"}


def test_create_role_needs_roles_write(db_session, org):
    member = factories.UserFactory()
    factories.add_member(db_session, org, member, "member")
    with pytest.raises(errors.PermissionDenied, match="roles:write"):
        create(db_session, member, org)


# --- update_role ---

def test_update_role_changes_fields_and_records_which(db_session, owner, org, support):
    holder = factories.UserFactory()
    factories.add_member(db_session, org, holder, "support")

    details = update(db_session, owner, org, support.id, name="helpdesk", permissions=["members:invite", "org:read"])
    db_session.commit()

    assert (details.role.name, details.permissions, details.member_count) == (
        "helpdesk", ["members:invite", "org:read"], 1)
    [event] = events(db_session, "role.updated")
    assert (event.organization_id, event.details) == (
        org.id, {"name": "helpdesk", "old_name": "support", "fields": ["name", "permissions"],
                 "permissions": ["members:invite", "org:read"]})
    # Its members act with the new permissions at once.
    access = organizations.require_access(db_session, user=holder, organization_id=org.id,
                                          permission="members:invite")
    assert "members:read" not in access.permissions


def test_update_role_without_changes_records_nothing(db_session, owner, org, support):
    update(db_session, owner, org, support.id, name="support", description="Helps",
           permissions=["org:read", "members:read"])
    assert events(db_session, "role.updated") == []


@pytest.mark.parametrize("name", ["owner", "admin", "member"])
def test_built_in_roles_cannot_be_changed(db_session, owner, org, name):
    role = organizations.builtin_role(db_session, org.id, name)
    with pytest.raises(errors.Conflict, match="Built-in"):
        update(db_session, owner, org, role.id, description="Mine now")


def test_update_role_to_a_taken_name_is_a_conflict(db_session, owner, org, support):
    other = create(db_session, owner, org).role
    with pytest.raises(errors.Conflict):
        update(db_session, owner, org, other.id, name="support")


def test_admin_cannot_edit_a_role_above_their_own(db_session, owner, org, admin):
    deleter = create(db_session, owner, org, name="deleter", permissions=["org:delete"]).role
    db_session.commit()
    with pytest.raises(errors.PermissionDenied):
        update(db_session, admin, org, deleter.id, description="Harmless now")


def test_admin_cannot_add_permissions_they_lack(db_session, org, admin, support):
    with pytest.raises(errors.PermissionDenied, match="org:delete"):
        update(db_session, admin, org, support.id, permissions=["org:read", "org:delete"])


def test_update_role_of_another_organization_is_404(db_session, owner, org):
    other = factories.create_organization(db_session, owner=owner, slug="globex")
    foreign = create(db_session, owner, other).role
    with pytest.raises(errors.NotFound):
        update(db_session, owner, org, foreign.id, description="Mine")


# --- delete_role ---

def test_delete_role_removes_it_and_records_it(db_session, owner, org, support):
    role_id = support.id
    delete(db_session, owner, org, role_id)
    db_session.commit()

    assert db_session.get(Role, role_id) is None
    [event] = events(db_session, "role.deleted")
    assert (event.organization_id, event.target_id, event.details) == (org.id, str(role_id), {"name": "support"})


def test_a_role_members_hold_cannot_be_deleted(db_session, owner, org, support):
    for _ in range(2):
        factories.add_member(db_session, org, factories.UserFactory(), "support")
    with pytest.raises(errors.Conflict, match="2 member") as err:
        delete(db_session, owner, org, support.id)
    assert err.value.details == {"member_count": 2}


@pytest.mark.parametrize("name", ["owner", "admin", "member"])
def test_built_in_roles_cannot_be_deleted(db_session, owner, org, name):
    with pytest.raises(errors.Conflict, match="Built-in"):
        delete(db_session, owner, org, organizations.builtin_role(db_session, org.id, name).id)


def test_admin_cannot_delete_a_role_above_their_own(db_session, owner, org, admin):
    deleter = create(db_session, owner, org, name="deleter", permissions=["org:delete"]).role
    db_session.commit()
    with pytest.raises(errors.PermissionDenied):
        delete(db_session, admin, org, deleter.id)


@pytest.mark.parametrize("role_id", ["not-a-uuid", str(uuid.uuid4())])
def test_delete_unknown_role_is_404(db_session, owner, org, role_id):
    with pytest.raises(errors.NotFound):
        delete(db_session, owner, org, role_id)
