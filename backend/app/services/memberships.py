"""Memberships: adding existing users to an organization, changing their role, removing them.

Every change obeys the rules in services.organizations: it starts with `lock_access`
(the organization locked, the caller's role read afresh), the caller only grants, changes
or removes roles within their reach (`require_role_within_reach`: only owners touch the
owner role), and the organization always keeps an owner (`is_last_owner`). The caller's
`Access` comes from `require_access`; the permission each change needs is checked here
again, on the fresh access, so the rules hold for every caller, not only the API.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager, joinedload

from app import errors
from app.models import Membership, Role, User
from app.models.base import as_uuid
from app.services import audit, grants, users
from app.services.actor import Actor
from app.stores.denylist import TokenDenylist
from app.services.organizations import (
    MEMBER,
    Access,
    builtin_role,
    get_membership,
    is_last_owner,
    is_owner_role,
    lock_access,
    require_not_member,
    require_permission,
    require_role_within_reach,
    role_permissions,
)
from app.services.pagination import paginate

LAST_OWNER = "An organization must keep at least one owner; make someone else an owner first."


def list_members(db: Session, *, organization_id: uuid.UUID, page: int, per_page: int, role: str | None = None,
                 q: str | None = None) -> tuple[list[Membership], int]:
    """One page of the organization's members by email, and how many match.

    `role` keeps members holding the role of that name; `q` keeps members whose email or
    name contains it, ignoring case.
    """
    query = (select(Membership).join(Membership.user).join(Membership.role)
             .where(Membership.organization_id == organization_id))
    if role:
        query = query.where(Role.name == role)
    if q:
        query = query.where(users.matching(q))
    return paginate(db, query.options(contains_eager(Membership.user), contains_eager(Membership.role))
                    .order_by(User.email), page=page, per_page=per_page)


def require_member(db: Session, *, organization_id: uuid.UUID, user_id: object) -> Membership:
    """The membership of `user_id` (a UUID or its string), read afresh from the database.

    Raises:
        NotFound: the user is not a member (or the id is malformed).
    """
    user_uuid = as_uuid(user_id)
    membership = None if user_uuid is None else db.scalar(
        select(Membership).options(joinedload(Membership.role))
        .where(Membership.organization_id == organization_id, Membership.user_id == user_uuid)
        .execution_options(populate_existing=True))
    if membership is None:
        raise errors.NotFound("Member not found.")
    return membership


def resolve_role(db: Session, *, organization_id: uuid.UUID, role: str) -> Role:
    """The organization's role named `role`, or whose id is `role`.

    Raises:
        ValidationFailed: the organization has no such role (a role of another organization is never used).
    """
    role_uuid = as_uuid(role)
    found = db.scalar(select(Role).where(Role.organization_id == organization_id,
                                         Role.id == role_uuid if role_uuid else Role.name == role))
    if found is None:
        raise errors.ValidationFailed(details={"role": ["No such role in this organization."]})
    return found


def add_member(db: Session, *, actor: Actor, access: Access, email: str, role: str) -> Membership:
    """Make the existing user with this email a member with `role` (a name or an id).

    Raises:
        PermissionDenied: the caller lacks members:invite, or the role is beyond their reach.
        ValidationFailed: the organization has no such role.
        NotFound: no user has this email.
        Conflict: the user is already a member.
    """
    access = lock_access(db, access)
    require_permission(access, "members:invite")
    organization = access.organization
    new_role = resolve_role(db, organization_id=organization.id, role=role)
    require_role_within_reach(access, new_role)
    user = users.get_user_by_email(db, email)
    if user is None:
        raise errors.NotFound("No user with this email.")
    require_not_member(db, organization_id=organization.id, user_id=user.id)
    membership = Membership(organization_id=organization.id, user_id=user.id, role=new_role)
    db.add(membership)
    db.flush()  # assign membership.created_at for the response
    audit.record_event(db, actor=actor, action="membership.added", organization_id=organization.id,
                       target_type="user", target_id=user.id, details={"role": new_role.name})
    return membership


def change_member_role(db: Session, *, actor: Actor, access: Access, user_id: object, role: str) -> Membership:
    """Give a member another role (a name or an id); giving the same role again changes nothing.

    Raises:
        PermissionDenied: the caller lacks members:update_role, or the member's current role
            or the new one is beyond their reach.
        NotFound: no such member.
        ValidationFailed: the organization has no such role.
        Conflict: the member is the last owner and the new role is not owner.
    """
    access = lock_access(db, access)
    require_permission(access, "members:update_role")
    organization = access.organization
    membership = require_member(db, organization_id=organization.id, user_id=user_id)
    new_role = resolve_role(db, organization_id=organization.id, role=role)
    require_role_within_reach(access, membership.role)
    require_role_within_reach(access, new_role)
    old_role = membership.role
    if new_role.id == old_role.id:
        return membership
    if is_last_owner(db, membership):
        raise errors.Conflict(LAST_OWNER)
    membership.role = new_role
    audit.record_event(db, actor=actor, action="membership.role_changed", organization_id=organization.id,
                       target_type="user", target_id=membership.user_id,
                       details={"old_role": old_role.name, "new_role": new_role.name})
    return membership


def remove_member(db: Session, *, actor: Actor, access: Access, user_id: object, denylist: TokenDenylist) -> None:
    """Remove a member, or let the caller leave, and revoke the tokens the member was issued in
    the organization (services.grants.revoke_user_grants_in_organization).

    Leaving needs nothing but the membership; removing someone else needs members:remove.

    Raises:
        PermissionDenied: removing someone else without members:remove, or a member whose role
            is beyond the caller's reach.
        NotFound: no such member.
        Conflict: the member is the last owner.
    """
    access = lock_access(db, access)
    organization = access.organization
    leaving = actor.user is not None and as_uuid(user_id) == actor.user.id
    if not leaving:
        require_permission(access, "members:remove")
    membership = require_member(db, organization_id=organization.id, user_id=user_id)
    if not leaving:
        require_role_within_reach(access, membership.role)
    if is_last_owner(db, membership):
        raise errors.Conflict(LAST_OWNER)
    member_id = membership.user_id
    revoked = grants.revoke_user_grants_in_organization(db, organization_id=organization.id, user_id=member_id,
                                                        denylist=denylist)
    details = {"role": membership.role.name, "reason": "left" if leaving else "removed",
               "refresh_tokens_revoked": revoked}
    db.delete(membership)
    audit.record_event(db, actor=actor, action="membership.removed", organization_id=organization.id,
                       target_type="user", target_id=member_id, details=details)



def sync_sso_membership(db: Session, *, actor: Actor, provider_id: uuid.UUID, organization_id: uuid.UUID, user: User,
                        default_role: str, group_role_map: dict[str, str], jit_membership: bool,
                        groups: list[str]) -> Membership | None:
    """The membership a sign-in through an organization's own connection gives (just in time).

    The role is the highest (most permissions) of those the person's IdP groups map to, else
    `default_role`; never owner, and an owner's role is never changed by a sign-in. A member is added
    only when `jit_membership` is on (so someone an admin removed stays out unless it is); an existing
    member's role follows the mapped groups on every sign-in, audited as membership.role_synced.
    """
    names = {group_role_map[group] for group in groups if group in group_role_map}
    mapped = [role for role in db.scalars(select(Role).where(Role.organization_id == organization_id,
                                                             Role.name.in_(names)))
              if not is_owner_role(role)]
    best = max(mapped, key=lambda role: (len(role_permissions(role)), role.name), default=None)
    membership = get_membership(db, organization_id=organization_id, user_id=user.id)
    if membership is None:
        if not jit_membership:
            return None
        role = best or db.scalar(select(Role).where(Role.organization_id == organization_id,
                                                    Role.name == default_role))
        if role is None or is_owner_role(role):  # the default role was deleted since: least privilege
            role = builtin_role(db, organization_id, MEMBER)
        membership = Membership(organization_id=organization_id, user_id=user.id, role=role)
        db.add(membership)
        db.flush()
        audit.record_event(db, actor=actor.as_user(user), action="membership.added", organization_id=organization_id,
                           target_type="user", target_id=user.id,
                           details={"role": role.name, "via": "sso", "provider_id": str(provider_id)})
        return membership
    if best is not None and best.id != membership.role_id and not is_owner_role(membership.role):
        old_role = membership.role
        membership.role = best
        audit.record_event(db, actor=actor.as_user(user), action="membership.role_synced",
                           organization_id=organization_id, target_type="user", target_id=user.id,
                           details={"old_role": old_role.name, "new_role": best.name, "provider_id": str(provider_id)})
    return membership
