"""Every membership, invitation and role change decides on the caller's role as it is when the change
runs (organizations.lock_access), not as it was when the request's Access was made: an admin demoted
while their request was in flight is refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app import errors
from app.services import invitations, memberships, organizations, roles
from app.services.actor import Actor
from app.stores.denylist import MemoryDenylist
from tests import factories

ISSUER = "http://127.0.0.1:5000"


def _context(db_session, org, owner, member) -> dict:
    invited = invitations.invite_member(db_session, actor=Actor(user=owner), access=factories.access_of(
        db_session, owner, org), email="invited@example.com", role="member", issuer=ISSUER).invitation
    context = {"member": member, "outsider": factories.UserFactory(email="outsider@example.com"),
               "invitation": invited, "role": factories.create_role(db_session, org, "support", ["members:read"])}
    db_session.commit()
    return context


WRITES: dict[str, Callable] = {
    "add member": lambda db, actor, access, ctx: memberships.add_member(
        db, actor=actor, access=access, email=ctx["outsider"].email, role="member"),
    "change role": lambda db, actor, access, ctx: memberships.change_member_role(
        db, actor=actor, access=access, user_id=ctx["member"].id, role="admin"),
    "remove member": lambda db, actor, access, ctx: memberships.remove_member(
        db, actor=actor, access=access, user_id=ctx["member"].id, denylist=MemoryDenylist()),
    "invite": lambda db, actor, access, ctx: invitations.invite_member(
        db, actor=actor, access=access, email="new@example.com", role="member", issuer=ISSUER),
    "revoke invitation": lambda db, actor, access, ctx: invitations.revoke_invitation(
        db, actor=actor, access=access, invitation_id=ctx["invitation"].id),
    "create role": lambda db, actor, access, ctx: roles.create_role(
        db, actor=actor, access=access, name="auditor", permissions=["audit:read"]),
    "update role": lambda db, actor, access, ctx: roles.update_role(
        db, actor=actor, access=access, role_id=ctx["role"].id, description="changed"),
    "delete role": lambda db, actor, access, ctx: roles.delete_role(
        db, actor=actor, access=access, role_id=ctx["role"].id),
}


@pytest.mark.parametrize("name", WRITES)
def test_a_write_after_the_callers_role_was_lowered_is_refused(db_session, org, owner, admin, member, name):
    context = _context(db_session, org, owner, member)
    # The request was authorised while the caller was an admin ...
    access = organizations.require_access(db_session, user=admin, organization_id=org.id, permission="org:read")
    # ... and is demoted to member, by another transaction, before the write runs.
    factories.demote_meanwhile(db_session, org, admin)

    with pytest.raises(errors.PermissionDenied):
        WRITES[name](db_session, Actor(user=admin), access, context)


@pytest.mark.parametrize("name", WRITES)
def test_the_same_write_by_an_admin_still_in_place_succeeds(db_session, org, owner, admin, member, name):
    """The control: without the demotion each write goes through, so the refusal above is the demotion's."""
    context = _context(db_session, org, owner, member)
    access = organizations.require_access(db_session, user=admin, organization_id=org.id, permission="org:read")

    WRITES[name](db_session, Actor(user=admin), access, context)
