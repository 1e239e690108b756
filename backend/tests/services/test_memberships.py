"""services.memberships (add, change role, remove, list) and the membership side of account deletion."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app import errors
from app.models import AuditEvent, AuthorizationCode, Consent, Membership, RefreshToken, Role, User
from app.models.base import utcnow
from app.security.tokens import new_token
from app.services import memberships, organizations, users
from app.services.actor import Actor
from app.stores.denylist import MemoryDenylist
from tests import factories
from tests.factories import DEFAULT_PASSWORD


@pytest.fixture
def deleter_role(db_session, org):
    """A custom role allowing org:delete, which admins do not hold."""
    role = Role(organization_id=org.id, name="deleter", permissions=["org:read", "org:delete"])
    db_session.add(role)
    db_session.commit()
    return role


def access_of(db_session, user, org, permission="org:read"):
    return organizations.require_access(db_session, user=user, organization_id=org.id, permission=permission)


def role_of(db_session, org, user):
    db_session.expire_all()
    membership = organizations.get_membership(db_session, organization_id=org.id, user_id=user.id)
    return membership.role.name if membership else None


def events(db_session, action):
    return db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def add(db_session, actor_user, org, email, role):
    return memberships.add_member(db_session, actor=Actor(user=actor_user),
                                  access=access_of(db_session, actor_user, org), email=email, role=role)


def change(db_session, actor_user, org, user_id, role):
    return memberships.change_member_role(db_session, actor=Actor(user=actor_user),
                                          access=access_of(db_session, actor_user, org), user_id=user_id, role=role)


def remove(db_session, actor_user, org, user_id, denylist=None):
    memberships.remove_member(db_session, actor=Actor(user=actor_user), access=access_of(db_session, actor_user, org),
                              user_id=user_id, denylist=denylist or MemoryDenylist())


# --- list_members ---

def test_list_members_pages_by_email_with_total(db_session, org, owner, admin, member):
    items, total = memberships.list_members(db_session, organization_id=org.id, page=2, per_page=2)
    assert total == 3
    assert [m.user.email for m in items] == ["owner@example.com"]

    items, _ = memberships.list_members(db_session, organization_id=org.id, page=1, per_page=2)
    assert [m.user.email for m in items] == ["admin@example.com", "member@example.com"]


def test_list_members_filters_by_role_name(db_session, org, owner, admin, member):
    items, total = memberships.list_members(db_session, organization_id=org.id, page=1, per_page=20, role="admin")
    assert (total, [m.user_id for m in items]) == (1, [admin.id])
    assert memberships.list_members(db_session, organization_id=org.id, page=1, per_page=20, role="nope") == ([], 0)


@pytest.mark.parametrize(("q", "expected"), [
    ("MEMBER@", ["member@example.com"]),
    ("ada", ["admin@example.com"]),
    ("example.com", ["admin@example.com", "member@example.com", "owner@example.com"]),
    ("%", []),
    ("_", []),
])
def test_list_members_searches_email_and_name_ignoring_case(db_session, org, owner, admin, member, q, expected):
    items, total = memberships.list_members(db_session, organization_id=org.id, page=1, per_page=20, q=q)
    assert [m.user.email for m in items] == expected and total == len(expected)


def test_list_members_shows_only_this_organizations_members(db_session, org, owner, member):
    other = factories.create_organization(db_session, owner=factories.UserFactory(), slug="globex")
    items, total = memberships.list_members(db_session, organization_id=other.id, page=1, per_page=20)
    assert total == 1 and member.id not in [m.user_id for m in items]


# --- add_member ---

def test_add_member_by_role_name_records_membership_added(db_session, org, owner):
    newcomer = factories.UserFactory(email="new@example.com")

    membership = add(db_session, owner, org, "NEW@example.com", "admin")
    db_session.commit()

    assert (membership.user_id, membership.role.name) == (newcomer.id, "admin")
    [event] = events(db_session, "membership.added")
    assert (event.organization_id, event.actor_user_id, event.target_type, event.target_id, event.details) == (
        org.id, owner.id, "user", str(newcomer.id), {"role": "admin"})


def test_add_member_by_role_id(db_session, org, owner):
    factories.UserFactory(email="new@example.com")
    role = organizations.builtin_role(db_session, org.id, "member")
    assert add(db_session, owner, org, "new@example.com", str(role.id)).role_id == role.id


def test_add_member_with_another_organizations_role_id_is_invalid(db_session, org, owner):
    other = factories.create_organization(db_session, owner=owner, slug="globex")
    factories.UserFactory(email="new@example.com")
    foreign = organizations.builtin_role(db_session, other.id, "member")

    with pytest.raises(errors.ValidationFailed) as err:
        add(db_session, owner, org, "new@example.com", str(foreign.id))
    assert "role" in err.value.details
    assert events(db_session, "membership.added") == []


def test_add_member_with_unknown_email_is_404(db_session, org, owner):
    with pytest.raises(errors.NotFound, match="No user with this email"):
        add(db_session, owner, org, "nobody@example.com", "member")


def test_add_member_twice_is_a_conflict(db_session, org, owner, member):
    with pytest.raises(errors.Conflict):
        add(db_session, owner, org, member.email, "admin")
    assert role_of(db_session, org, member) == "member"


@pytest.mark.parametrize("role", ["owner", "deleter"])
def test_admin_cannot_grant_a_role_above_their_own(db_session, org, admin, deleter_role, role):
    factories.UserFactory(email="new@example.com")
    with pytest.raises(errors.PermissionDenied):
        add(db_session, admin, org, "new@example.com", role)


def test_owner_grants_the_owner_role(db_session, org, owner):
    factories.UserFactory(email="new@example.com")
    assert add(db_session, owner, org, "new@example.com", "owner").role.name == "owner"


def test_add_member_needs_members_invite(db_session, org, member):
    factories.UserFactory(email="new@example.com")
    with pytest.raises(errors.PermissionDenied, match="members:invite"):
        add(db_session, member, org, "new@example.com", "member")


# --- change_member_role ---

def test_change_member_role_records_old_and_new(db_session, org, owner, member):
    change(db_session, owner, org, member.id, "admin")
    db_session.commit()

    assert role_of(db_session, org, member) == "admin"
    [event] = events(db_session, "membership.role_changed")
    assert (event.organization_id, event.target_id, event.details) == (
        org.id, str(member.id), {"old_role": "member", "new_role": "admin"})


def test_change_to_the_same_role_changes_nothing(db_session, org, owner, member):
    change(db_session, owner, org, member.id, "member")
    assert events(db_session, "membership.role_changed") == []


def test_the_last_owner_cannot_demote_themselves(db_session, org, owner):
    with pytest.raises(errors.Conflict, match="at least one owner"):
        change(db_session, owner, org, owner.id, "admin")
    assert role_of(db_session, org, owner) == "owner"


def test_nobody_else_can_remove_or_demote_the_last_owner_either(db_session, org, owner):
    """A platform administrator acts as an owner, and still cannot leave the organization ownerless."""
    operator = factories.UserFactory(is_platform_admin=True)
    with pytest.raises(errors.Conflict, match="at least one owner"):
        change(db_session, operator, org, owner.id, "admin")
    with pytest.raises(errors.Conflict, match="at least one owner"):
        remove(db_session, operator, org, owner.id)
    assert role_of(db_session, org, owner) == "owner"


def test_an_owner_may_step_down_when_another_owner_remains(db_session, org, owner):
    second = factories.UserFactory()
    factories.add_member(db_session, org, second, "owner")

    change(db_session, owner, org, owner.id, "admin")
    db_session.commit()

    assert (role_of(db_session, org, owner), role_of(db_session, org, second)) == ("admin", "owner")


def test_admin_cannot_promote_to_owner(db_session, org, admin, member):
    with pytest.raises(errors.PermissionDenied, match="Only owners"):
        change(db_session, admin, org, member.id, "owner")


def test_admin_cannot_demote_an_owner(db_session, org, owner, admin):
    factories.add_member(db_session, org, factories.UserFactory(), "owner")  # not the last owner: 403 is the reason
    with pytest.raises(errors.PermissionDenied, match="Only owners"):
        change(db_session, admin, org, owner.id, "member")


def test_admin_cannot_change_a_member_whose_role_is_above_theirs(db_session, org, admin, deleter_role):
    holder = factories.UserFactory()
    factories.add_member(db_session, org, holder, "deleter")
    with pytest.raises(errors.PermissionDenied, match="deleter"):
        change(db_session, admin, org, holder.id, "member")


def test_platform_admin_counts_as_owner(db_session, org, member):
    platform_admin = factories.UserFactory(is_platform_admin=True)
    change(db_session, platform_admin, org, member.id, "owner")
    db_session.commit()
    assert role_of(db_session, org, member) == "owner"


@pytest.mark.parametrize("user_id", [lambda: uuid.uuid4(), lambda: "not-a-uuid"])
def test_change_role_of_a_non_member_is_404(db_session, org, owner, user_id):
    with pytest.raises(errors.NotFound, match="Member not found"):
        change(db_session, owner, org, user_id(), "admin")


def test_change_role_needs_members_update_role(db_session, org, owner, member):
    with pytest.raises(errors.PermissionDenied, match="members:update_role"):
        change(db_session, member, org, owner.id, "member")


# --- remove_member ---

def test_remove_member_records_membership_removed(db_session, org, owner, member):
    remove(db_session, owner, org, member.id)
    db_session.commit()

    assert role_of(db_session, org, member) is None
    [event] = events(db_session, "membership.removed")
    assert (event.organization_id, event.actor_user_id, event.target_id, event.details) == (
        org.id, owner.id, str(member.id), {"role": "member", "reason": "removed", "refresh_tokens_revoked": 0})


def test_a_member_may_leave_without_members_remove(db_session, org, member):
    remove(db_session, member, org, member.id)
    db_session.commit()

    assert role_of(db_session, org, member) is None
    assert events(db_session, "membership.removed")[0].details["reason"] == "left"


def test_a_member_cannot_remove_someone_else(db_session, org, admin, member):
    with pytest.raises(errors.PermissionDenied, match="members:remove"):
        remove(db_session, member, org, admin.id)
    assert role_of(db_session, org, admin) == "admin"


def test_the_last_owner_cannot_leave(db_session, org, owner):
    with pytest.raises(errors.Conflict):
        remove(db_session, owner, org, owner.id)
    assert role_of(db_session, org, owner) == "owner"


def test_an_owner_may_remove_another_owner(db_session, org, owner):
    second = factories.UserFactory()
    factories.add_member(db_session, org, second, "owner")
    remove(db_session, owner, org, second.id)
    assert role_of(db_session, org, second) is None


def test_admin_cannot_remove_an_owner(db_session, org, owner, admin):
    factories.add_member(db_session, org, factories.UserFactory(), "owner")
    with pytest.raises(errors.PermissionDenied, match="Only owners"):
        remove(db_session, admin, org, owner.id)


def test_admin_cannot_remove_a_member_whose_role_is_above_theirs(db_session, org, admin, deleter_role):
    holder = factories.UserFactory()
    factories.add_member(db_session, org, holder, "deleter")
    with pytest.raises(errors.PermissionDenied):
        remove(db_session, admin, org, holder.id)


def test_remove_a_non_member_is_404(db_session, org, owner):
    stranger = factories.UserFactory()
    with pytest.raises(errors.NotFound):
        remove(db_session, owner, org, stranger.id)


def test_remove_member_revokes_their_refresh_tokens_in_this_organization_only(app, db_session, org, owner, member):
    client = factories.OAuthClientFactory()
    other = factories.create_organization(db_session, owner=owner, slug="globex")
    factories.add_member(db_session, other, member, "member")
    in_org = factories.issue_refresh_token(db_session, client=client, user=member, organization=org,
                                           access_token_jti="jti-in-org")
    elsewhere = factories.issue_refresh_token(db_session, client=client, user=member, organization=other,
                                              access_token_jti="jti-elsewhere")
    no_org = factories.issue_refresh_token(db_session, client=client, user=member, organization=None)
    owners = factories.issue_refresh_token(db_session, client=client, user=owner, organization=org)
    denylist = MemoryDenylist()

    remove(db_session, owner, org, member.id, denylist)
    db_session.commit()

    db_session.expire_all()
    assert db_session.get(RefreshToken, in_org.id).revoked_at is not None
    assert [db_session.get(RefreshToken, row.id).revoked_at for row in (elsewhere, no_org, owners)] == [None] * 3
    assert denylist.is_denied("jti-in-org") and not denylist.is_denied("jti-elsewhere")
    assert events(db_session, "membership.removed")[0].details["refresh_tokens_revoked"] == 1



def test_remove_member_forgets_their_consents_in_this_organization_only(db_session, org, owner, member):
    """Joining again must not let a client skip the consent screen on the strength of an old consent."""
    client = factories.OAuthClientFactory()
    other = factories.create_organization(db_session, owner=owner, slug="globex")
    factories.add_member(db_session, other, member, "member")
    for user, organization in ((member, org), (member, other), (member, None), (owner, org)):
        db_session.add(Consent(user_id=user.id, client_pk=client.id, scopes=["openid", "org:admin"],
                               organization_id=organization.id if organization else None))
    db_session.commit()

    remove(db_session, owner, org, member.id, MemoryDenylist())
    db_session.commit()

    left = {(row.user_id, row.organization_id) for row in db_session.scalars(select(Consent))}
    assert left == {(member.id, other.id), (member.id, None), (owner.id, org.id)}


def test_remove_member_denies_access_tokens_issued_from_codes_without_a_refresh_token(db_session, org, owner, member):
    """Those tokens belong to no refresh family; without this they would live on until they expire."""
    client = factories.OAuthClientFactory()
    now = utcnow()

    def redeemed_code(user, organization, jti):
        code = AuthorizationCode(code_hash=new_token(), client_pk=client.id, user_id=user.id, redirect_uri="x",
                                 scope="openid", auth_time=now, expires_at=now, redeemed_at=now,
                                 organization_id=organization.id if organization else None,
                                 access_token_jti=jti, access_token_expires_at=now + timedelta(minutes=10))
        db_session.add(code)

    redeemed_code(member, org, "jti-from-code")
    redeemed_code(member, None, "jti-without-org")
    redeemed_code(owner, org, "jti-of-owner")
    db_session.commit()
    denylist = MemoryDenylist()

    remove(db_session, owner, org, member.id, denylist)
    db_session.commit()

    assert denylist.is_denied("jti-from-code")
    assert not denylist.is_denied("jti-without-org") and not denylist.is_denied("jti-of-owner")


# --- account deletion (services.users.delete_account) ---

def test_deleting_the_sole_owner_account_is_refused_with_the_slugs(db_session, org, owner, settings):
    shared = factories.create_organization(db_session, owner=owner, slug="shared")
    factories.add_member(db_session, shared, factories.UserFactory(), "owner")
    solo = factories.create_organization(db_session, owner=owner, slug="solo")

    with pytest.raises(errors.Conflict) as err:
        users.delete_account(db_session, actor=Actor(user=owner), user=owner, password=DEFAULT_PASSWORD,
                             settings=settings, denylist=MemoryDenylist())

    assert sorted(err.value.details["organizations"]) == ["acme", "solo"]
    db_session.rollback()
    assert db_session.get(User, owner.id) is not None
    assert role_of(db_session, solo, owner) == "owner"


def test_deleting_an_account_records_leaving_each_organization(db_session, org, owner, member, settings):
    other = factories.create_organization(db_session, owner=owner, slug="globex")
    factories.add_member(db_session, other, member, "admin")

    users.delete_account(db_session, actor=Actor(user=member), user=member, password=DEFAULT_PASSWORD,
                         settings=settings, denylist=MemoryDenylist())
    db_session.commit()

    assert db_session.scalar(select(func.count()).select_from(Membership).where(Membership.user_id == member.id)) == 0
    removed = events(db_session, "membership.removed")
    assert sorted(e.organization_id for e in removed) == sorted([org.id, other.id])
    assert all(e.details == {"reason": "account_deleted"} for e in removed)
    # As every event of a deleted user: kept, with the user anonymised.
    assert all(e.actor_user_id is None and e.target_id is None for e in removed)


def test_deleting_an_account_with_a_wrong_password_checks_the_password_first(db_session, org, owner, settings):
    with pytest.raises(errors.InvalidCredentials):
        users.delete_account(db_session, actor=Actor(user=owner), user=owner, password="wrong password",
                             settings=settings, denylist=MemoryDenylist())


# --- concurrency: the organization row lock ---

def _b_waits_for_a_lock(db_session: Session, outcome: dict[str, object]) -> bool:
    """Poll until B is seen waiting for a row lock (True) or has finished without waiting (False)."""
    deadline = time.monotonic() + 10
    while "b" not in outcome and time.monotonic() < deadline:
        db_session.rollback()  # pg_stat_activity is read once per transaction
        if db_session.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND wait_event_type = 'Lock'")):
            return True
        time.sleep(0.01)
    return False


def test_two_owners_demoting_each_other_at_once_leave_one_owner(db_session, org, owner):
    """Owner A demotes B while B demotes A. On PostgreSQL, B reads its access (owner) while A's
    change is uncommitted, and A's transaction stays open until B is seen waiting for the lock,
    so the test fails if B does not wait: without the lock B would count two owners and both
    demotions would succeed. Once it has the lock, B acts on its current role (admin) and is
    refused. SQLite takes its write lock at BEGIN, so there B queues behind A from the start.
    """
    second = factories.UserFactory()
    factories.add_member(db_session, org, second, "owner")
    org_id, a_id, b_id = org.id, owner.id, second.id
    db_session.commit()  # hold no transaction (on SQLite, no lock) while A and B run
    engine = db_session.get_bind()
    outcome: dict[str, object] = {}

    def b_demotes_a() -> None:
        with Session(engine) as session:
            b = session.get(User, b_id)
            access = organizations.require_access(session, user=b, organization_id=org_id,
                                                  permission="members:update_role")
            try:
                memberships.change_member_role(session, actor=Actor(user=b), access=access, user_id=a_id,
                                               role="admin")
                session.commit()
                outcome["b"] = "demoted"
            except errors.AppError as err:
                outcome["b"] = err.type

    with Session(engine) as session_a:
        a = session_a.get(User, a_id)
        access = organizations.require_access(session_a, user=a, organization_id=org_id,
                                              permission="members:update_role")
        memberships.change_member_role(session_a, actor=Actor(user=a), access=access, user_id=b_id,
                                       role="admin")
        session_a.flush()
        thread = threading.Thread(target=b_demotes_a)
        thread.start()
        if engine.dialect.name == "postgresql":
            assert _b_waits_for_a_lock(db_session, outcome), outcome
        session_a.commit()
    thread.join(30)

    assert outcome == {"b": "PERMISSION_DENIED"}
    assert (role_of(db_session, org, owner), role_of(db_session, org, second)) == ("owner", "admin")
