"""services.organizations: creation, changes, deletion, who may do what, and the shared membership rules."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, func, insert, select

from app import errors
from app.models import (
    AuditEvent,
    AuthorizationCode,
    Invitation,
    Membership,
    OAuthClient,
    Organization,
    RefreshToken,
    Role,
)
from app.models.base import utcnow
from app.security.tokens import hash_token, new_token
from app.services import organizations
from app.services.access_tokens import verify_access_token
from app.services.actor import Actor
from app.stores.denylist import MemoryDenylist
from app.stores.keysets import VerifiedTokens
from tests import factories


def access_of(db_session, user, org, permission="org:read", **kwargs):
    return organizations.require_access(db_session, user=user, organization_id=org.id, permission=permission,
                                        **kwargs)


def events(db_session, action):
    return db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def verify(app, token, denylist):
    return verify_access_token(token, settings=app.extensions["gatehouse.settings"],
                               keys=app.extensions["gatehouse.keys"], verified_tokens=VerifiedTokens(), denied=denylist)


def count(db_session, model, **filters):
    return db_session.scalar(select(func.count()).select_from(model).filter_by(**filters))


# --- create / update ---

def test_create_organization_makes_built_in_roles_and_the_creator_its_owner(db_session, owner):
    org = organizations.create_organization(db_session, actor=Actor(user=owner), name=" Acme Inc ", slug="acme",
                                            settings={"invitation_ttl_hours": 24})
    db_session.commit()

    assert (org.name, org.slug, org.settings) == ("Acme Inc", "acme", {"invitation_ttl_hours": 24})
    roles = db_session.scalars(select(Role).where(Role.organization_id == org.id)).all()
    assert sorted((r.name, r.builtin) for r in roles) == [("admin", True), ("member", True), ("owner", True)]
    membership = organizations.get_membership(db_session, organization_id=org.id, user_id=owner.id)
    assert membership.role.name == "owner"
    [event] = events(db_session, "org.created")
    assert (event.organization_id, event.actor_user_id, event.details) == (org.id, owner.id, {"slug": "acme"})


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"slug": "Acme"}, "slug"),
    ({"slug": "-acme"}, "slug"),
    ({"slug": str(uuid.uuid4())}, "slug"),
    ({"name": "   "}, "name"),
    ({"settings": {"theme": "dark"}}, "theme"),
    ({"settings": {"invitation_ttl_hours": 0}}, "invitation_ttl_hours"),
])
def test_create_organization_rejects_bad_fields(db_session, owner, kwargs, field):
    values = {"name": "Acme", "slug": "acme", **kwargs}
    with pytest.raises(errors.ValidationFailed) as err:
        organizations.create_organization(db_session, actor=Actor(user=owner), **values)
    assert field in err.value.details
    assert count(db_session, Organization) == 0


def test_create_organization_with_a_taken_slug_is_a_conflict(db_session, owner, org):
    with pytest.raises(errors.Conflict):
        organizations.create_organization(db_session, actor=Actor(user=owner), name="Other", slug="acme")


def test_update_organization_merges_settings_and_records_changed_fields(db_session, owner, org):
    organizations.update_organization(db_session, actor=Actor(user=owner),
                                      access=access_of(db_session, owner, org), name="Acme Ltd",
                                      settings={"invitation_ttl_hours": 48})
    db_session.commit()

    assert (org.name, org.slug, org.settings) == ("Acme Ltd", "acme", {"invitation_ttl_hours": 48})
    [event] = events(db_session, "org.updated")
    assert (event.organization_id, event.details) == (org.id, {"fields": ["name", "settings"]})


def test_update_organization_to_a_taken_slug_is_a_conflict(db_session, owner, org):
    factories.create_organization(db_session, owner=owner, slug="globex")
    with pytest.raises(errors.Conflict):
        organizations.update_organization(db_session, actor=Actor(user=owner),
                                          access=access_of(db_session, owner, org), slug="globex")


def test_update_organization_without_changes_records_nothing(db_session, owner, org):
    organizations.update_organization(db_session, actor=Actor(user=owner),
                                      access=access_of(db_session, owner, org), name="Acme Corp")
    assert events(db_session, "org.updated") == []


# --- require_access ---

def test_require_access_gives_members_their_role_permissions(db_session, org):
    member = factories.UserFactory()
    factories.add_member(db_session, org, member, "member")

    access = access_of(db_session, member, org, "members:read")

    assert access.permissions == organizations.BUILTIN_ROLES["member"][1]
    assert access.is_owner is False and access.membership.user_id == member.id


def test_require_access_refuses_a_member_without_the_permission(db_session, org):
    member = factories.UserFactory()
    factories.add_member(db_session, org, member, "member")
    with pytest.raises(errors.PermissionDenied):
        access_of(db_session, member, org, "members:invite")


@pytest.mark.parametrize("organization_id", ["missing", "malformed", "not-a-member"])
def test_require_access_answers_404_alike_for_unknown_organizations_and_non_members(db_session, org,
                                                                                     organization_id):
    outsider = factories.UserFactory()
    target = {"missing": uuid.uuid4(), "malformed": "acme", "not-a-member": org.id}[organization_id]
    with pytest.raises(errors.NotFound) as err:
        organizations.require_access(db_session, user=outsider, organization_id=target, permission="org:read")
    assert err.value.message == "Organization not found."


def test_require_access_gives_platform_admins_everything_with_a_session_only(db_session, org):
    admin = factories.UserFactory(is_platform_admin=True)

    access = access_of(db_session, admin, org, "org:delete")
    assert access.permissions == organizations.ALL_PERMISSIONS and access.is_owner is True

    with pytest.raises(errors.NotFound):
        access_of(db_session, admin, org, via_access_token=True, token_organization_id=org.id)


def test_require_access_with_an_access_token_for_another_organization_is_403(db_session, owner, org):
    other = factories.create_organization(db_session, owner=owner, slug="globex")
    with pytest.raises(errors.PermissionDenied):
        access_of(db_session, owner, org, via_access_token=True, token_organization_id=other.id)


# --- who may grant what ---

def custom_role(db_session, org, name, permissions):
    role = Role(organization_id=org.id, name=name, permissions=permissions)
    db_session.add(role)
    db_session.commit()
    return role


def test_may_manage_role_keeps_the_owner_role_for_owners(db_session, org):
    owner_role = organizations.builtin_role(db_session, org.id, "owner")
    admin_role = organizations.builtin_role(db_session, org.id, "admin")
    everything = organizations.ALL_PERMISSIONS

    assert organizations.may_manage_role(everything, True, owner_role) is True
    assert organizations.may_manage_role(everything, False, owner_role) is False
    assert organizations.may_manage_role(organizations.role_permissions(admin_role), False, admin_role) is True


def test_may_manage_role_refuses_roles_allowing_more_than_the_actor(db_session, org):
    admin_permissions = organizations.BUILTIN_ROLES["admin"][1]
    deleter = custom_role(db_session, org, "deleter", ["org:read", "org:delete"])
    reader = custom_role(db_session, org, "reader", ["org:read", "not-a-permission"])

    assert organizations.may_manage_role(admin_permissions, False, deleter) is False
    assert organizations.may_manage_role(admin_permissions, True, deleter) is True
    # Unknown stored entries allow nothing, so they do not put a role out of reach.
    assert organizations.may_manage_role(frozenset({"org:read"}), False, reader) is True


def test_may_grant_permissions():
    assert organizations.may_grant_permissions(frozenset({"org:read"}), False, frozenset({"org:read"})) is True
    assert organizations.may_grant_permissions(frozenset({"org:read"}), False, frozenset({"org:delete"})) is False
    assert organizations.may_grant_permissions(frozenset(), True, frozenset({"org:delete"})) is True


def test_is_last_owner_counts_owners_only(db_session, owner, org):
    admin = factories.UserFactory()
    admin_membership = factories.add_member(db_session, org, admin, "admin")
    owner_membership = organizations.get_membership(db_session, organization_id=org.id, user_id=owner.id)

    assert organizations.is_last_owner(db_session, owner_membership) is True
    assert organizations.is_last_owner(db_session, admin_membership) is False

    factories.add_member(db_session, org, factories.UserFactory(), "owner")
    assert organizations.is_last_owner(db_session, owner_membership) is False


def test_lock_access_decides_on_the_callers_current_role(db_session, owner, org):
    admin = factories.UserFactory()
    factories.add_member(db_session, org, admin, "admin")
    access = access_of(db_session, admin, org, "members:invite")
    factories.demote_meanwhile(db_session, org, admin)  # after the access was decided

    locked = organizations.lock_access(db_session, access)

    assert locked.permissions == organizations.BUILTIN_ROLES["member"][1] and locked.is_owner is False
    with pytest.raises(errors.PermissionDenied):
        organizations.require_permission(locked, "members:invite")


def test_lock_access_of_a_caller_removed_meanwhile_is_404(db_session, owner, org):
    member = factories.UserFactory()
    membership = factories.add_member(db_session, org, member, "member")
    access = access_of(db_session, member, org)
    db_session.execute(Membership.__table__.delete().where(Membership.__table__.c.id == membership.id))

    with pytest.raises(errors.NotFound):
        organizations.lock_access(db_session, access)


def test_lock_access_keeps_a_platform_admins_session_rights(db_session, org):
    platform_admin = factories.UserFactory(is_platform_admin=True)
    access = access_of(db_session, platform_admin, org, "org:delete")

    locked = organizations.lock_access(db_session, access)

    assert (locked.permissions, locked.is_owner, locked.elevated) == (organizations.ALL_PERMISSIONS, True, True)


def test_lock_organization_of_a_deleted_organization_is_404(db_session):
    with pytest.raises(errors.NotFound):
        organizations.lock_organization(db_session, uuid.uuid4())


def test_user_organizations_lists_role_and_sorted_permissions_by_name(db_session, owner, org):
    zeta = factories.create_organization(db_session, owner=factories.UserFactory(), slug="zeta", name="Zeta")
    factories.add_member(db_session, zeta, owner, "member")

    mine = organizations.user_organizations(db_session, user_id=owner.id)

    assert [(m.membership.organization.slug, m.membership.role.name) for m in mine] == [("acme", "owner"),
                                                                                          ("zeta", "member")]
    assert mine[0].permissions == sorted(organizations.ALL_PERMISSIONS)
    assert mine[1].permissions == ["members:read", "org:read", "roles:read"]


# --- delete ---

def test_delete_organization_removes_everything_it_owns_and_revokes_its_tokens(app, db_session, owner, org):
    member = factories.UserFactory()
    factories.add_member(db_session, org, member, "member")
    custom_role(db_session, org, "support", ["members:read"])
    db_session.add(Invitation(organization_id=org.id, email="invitee@example.com",
                              role_id=organizations.builtin_role(db_session, org.id, "member").id,
                              token_hash=hash_token(new_token()), expires_at=utcnow() + timedelta(days=1)))
    client = factories.OAuthClientFactory(organization_id=org.id)
    platform_client = factories.OAuthClientFactory()
    factories.issue_refresh_token(db_session, client=platform_client, user=member, organization=org)
    unrelated = factories.issue_refresh_token(db_session, client=platform_client, user=member, organization=None)
    db_session.add(AuthorizationCode(code_hash=hash_token(new_token()), client_pk=platform_client.id,
                                     user_id=member.id, redirect_uri="https://app.example.com/callback",
                                     organization_id=org.id, auth_time=utcnow(),
                                     expires_at=utcnow() + timedelta(minutes=1)))
    db_session.commit()
    org_id = org.id
    token = factories.access_token(app, user=member, organization=org)
    denylist = MemoryDenylist()
    assert verify(app, token, denylist) is not None

    organizations.delete_organization(db_session, actor=Actor(user=owner),

                                      access=access_of(db_session, owner, org), denylist=denylist,
                                      access_token_lifetime=600)
    db_session.commit()

    for model in (Organization, Membership, Role, Invitation):
        key = "id" if model is Organization else "organization_id"
        assert count(db_session, model, **{key: org_id}) == 0, model
    assert db_session.get(OAuthClient, client.id) is None
    assert count(db_session, RefreshToken, organization_id=org_id) == 0
    assert count(db_session, AuthorizationCode, organization_id=org_id) == 0
    assert db_session.get(RefreshToken, unrelated.id) is not None
    assert db_session.get(OAuthClient, platform_client.id) is not None
    assert verify(app, token, denylist) is None
    [event] = events(db_session, "org.deleted")
    assert (event.organization_id, event.details) == (org_id, {"slug": "acme"})
    assert [e.action for e in events(db_session, "client.deleted")] == ["client.deleted"]


def test_delete_organization_leaves_other_organizations_tokens_alone(app, db_session, owner, org):
    other = factories.create_organization(db_session, owner=owner, slug="globex")
    token = factories.access_token(app, user=owner, organization=other)
    denylist = MemoryDenylist()

    organizations.delete_organization(db_session, actor=Actor(user=owner),

                                      access=access_of(db_session, owner, org), denylist=denylist,
                                      access_token_lifetime=600)

    assert verify(app, token, denylist) is not None
    assert db_session.get(Organization, other.id) is not None


def test_update_and_delete_decide_on_the_callers_role_as_it_is_now(db_session, owner, org, database_url):
    """An Access taken before a concurrent demotion committed does not let the caller act on the old role."""
    second_owner = factories.UserFactory()
    factories.add_member(db_session, org, second_owner, "owner")
    stale = access_of(db_session, second_owner, org, "org:delete")
    factories.demote_meanwhile(db_session, org, second_owner)

    with pytest.raises(errors.PermissionDenied, match="org:delete"):
        organizations.delete_organization(db_session, actor=Actor(user=second_owner), access=stale,
                                          denylist=MemoryDenylist(), access_token_lifetime=600)
    with pytest.raises(errors.PermissionDenied, match="org:update"):
        organizations.update_organization(db_session, actor=Actor(user=second_owner), access=stale, name="Mine")
    db_session.rollback()
    assert db_session.get(Organization, org.id).name == "Acme Corp"


def test_a_slug_taken_between_the_check_and_the_insert_is_a_conflict_not_an_error(db_session, owner):
    """The unique constraint settles a race the up-front check cannot see; the caller gets 409, not 500.

    The competing row is written after the check, just before our insert, on the same
    connection (inside our savepoint, so it is rolled back with it): the race plays out
    the same way on SQLite and PostgreSQL."""
    def competitor_takes_the_slug(session, flush_context, instances):
        session.connection().execute(insert(Organization).values(
            id=uuid.uuid4(), slug="racy", name="First", settings={}, created_at=utcnow(), updated_at=utcnow()))

    event.listen(db_session, "before_flush", competitor_takes_the_slug, once=True)
    with pytest.raises(errors.Conflict, match="slug already exists"):
        organizations.create_organization(db_session, actor=Actor(user=owner), name="Racy", slug="racy")
    # The session is still usable and nothing half-made is left: no organization, no roles.
    assert db_session.scalar(select(func.count()).select_from(Organization).where(Organization.slug == "racy")) == 0
    assert db_session.scalar(select(func.count()).select_from(Role)) == 0
