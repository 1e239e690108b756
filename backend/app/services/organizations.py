"""Organizations: creation, settings, deletion, the permission catalogue, and who may do what in one.

Access to anything an organization owns goes through `require_access`, the one place
that decides between 404 (not a member: ids do not leak), 403 (a member without the
permission) and success. The rules every membership and role change obeys are here too:
`may_manage_role` (nobody hands out or overrules more than they hold; only owners touch
the owner role), `is_last_owner` (an organization always keeps an owner) and
`lock_organization` and `lock_access` (such changes to one organization happen one at a
time, each deciding on the caller's current role). The changes themselves live in
services.memberships and services.roles.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, joinedload

from app import errors
from app.config import CLOCK_SKEW_MARGIN, MAX_CLIENT_ACCESS_TOKEN_LIFETIME
from app.models import (IdentityProvider, Invitation, Membership, OAuthClient, Organization, OrganizationDomain, Role,
                        User)
from app.models.organization import INVITATION_TTL_HOURS_DEFAULT, INVITATION_TTL_HOURS_MAX, SLUG
from app.models.base import as_uuid
from app.services import audit, clients, revocations
from app.services.actor import Actor
from app.security.permissions import ALL_PERMISSIONS, PERMISSIONS
from app.stores.denylist import TokenDenylist


OWNER, ADMIN, MEMBER = "owner", "admin", "member"
BUILTIN_ROLES: dict[str, tuple[str, frozenset[str]]] = {
    OWNER: ("Full control, including deleting the organization and managing owners.", ALL_PERMISSIONS),
    ADMIN: ("Manages members, roles, clients and settings; cannot delete the organization or manage owners.",
            ALL_PERMISSIONS - {"org:delete"}),
    MEMBER: ("Sees the organization and its members.", frozenset({"org:read", "members:read", "roles:read"})),
}


# The scope that lets an access token act on the management API for its organization.
ORG_ADMIN_SCOPE = "org:admin"


# Every member may see the organization they belong to, and leave it, whatever their role.
MEMBERSHIP_PERMISSIONS = frozenset({"org:read"})


def role_permissions(role: Role) -> frozenset[str]:
    """What a role allows: built-in roles from code, custom roles as stored (unknown entries
    ignored) plus MEMBERSHIP_PERMISSIONS."""
    if role.builtin:
        return BUILTIN_ROLES[role.name][1]
    return (frozenset(role.permissions) & ALL_PERMISSIONS) | MEMBERSHIP_PERMISSIONS


def is_owner_role(role: Role) -> bool:
    return role.builtin and role.name == OWNER


def may_grant_permissions(actor_permissions: frozenset[str], actor_is_owner: bool,
                          permissions: frozenset[str]) -> bool:
    """Whether someone with these permissions may put `permissions` into a role (owners may put anything)."""
    return actor_is_owner or permissions <= actor_permissions


def may_manage_role(actor_permissions: frozenset[str], actor_is_owner: bool, role: Role) -> bool:
    """Whether someone with these permissions may grant, take away, or change holders of `role`.

    Only owners touch the owner role; otherwise a role is within reach when it allows
    nothing the actor is not allowed (no one hands out, or overrules, more than they hold).
    """
    if is_owner_role(role) and not actor_is_owner:
        return False
    return may_grant_permissions(actor_permissions, actor_is_owner, role_permissions(role))


def slug_problem(slug: str) -> str | None:
    """Why `slug` is not a usable organization slug, or None."""
    if not SLUG.fullmatch(slug):
        return "Use 1-63 lower-case letters, digits and hyphens, starting and ending with a letter or digit."
    if as_uuid(slug) is not None:
        # `organization=` in /oauth2/authorize takes an id or a slug; they must not collide.
        return "Must not look like an organization id."
    return None


def settings_problems(settings: dict[str, Any]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for key, value in settings.items():
        if key == "invitation_ttl_hours":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INVITATION_TTL_HOURS_MAX:
                problems[key] = [f"Must be a whole number of hours from 1 to {INVITATION_TTL_HOURS_MAX}."]
        else:
            problems[key] = ["Unknown setting."]
    return problems


def invitation_ttl_hours(organization: Organization) -> int:
    return int(organization.settings.get("invitation_ttl_hours", INVITATION_TTL_HOURS_DEFAULT))


# Rows that belong to one organization and are named by their own id.
OrganizationRow = TypeVar("OrganizationRow", Role, Invitation, IdentityProvider, OrganizationDomain)


def get_organization(db: Session, organization_id: object) -> Organization | None:
    """The organization with this id (a UUID or its string), or None; malformed ids are None."""
    org_uuid = as_uuid(organization_id)
    return db.get(Organization, org_uuid) if org_uuid else None


def require_in_organization(db: Session, model: type[OrganizationRow], *, organization_id: uuid.UUID,
                            row_id: object, not_found: str) -> OrganizationRow:
    """The organization's row of `model` with this id (a UUID or its string): one query scoped to
    the organization, so another organization's row, or a malformed id, is not found either.

    Raises:
        NotFound: with the message `not_found`.
    """
    row_uuid = as_uuid(row_id)
    row = None if row_uuid is None else db.scalar(
        select(model).where(model.organization_id == organization_id, model.id == row_uuid))
    if row is None:
        raise errors.NotFound(not_found)
    return row


def find_organization(db: Session, id_or_slug: str) -> Organization | None:
    """The organization named by id or by slug (as `organization=` in an authorization request)."""
    return get_organization(db, id_or_slug) or db.scalar(select(Organization).where(Organization.slug == id_or_slug))


def builtin_role(db: Session, organization_id: uuid.UUID, name: str) -> Role:
    return db.scalars(select(Role).where(Role.organization_id == organization_id, Role.builtin.is_(True),
                                         Role.name == name)).one()


def get_membership(db: Session, *, organization_id: uuid.UUID, user_id: uuid.UUID) -> Membership | None:
    return db.scalar(select(Membership).where(Membership.organization_id == organization_id,
                                              Membership.user_id == user_id))


def require_not_member(db: Session, *, organization_id: uuid.UUID, user_id: uuid.UUID,
                       message: str = "This user is already a member of the organization.") -> None:
    """Raises:
        Conflict: the user is a member of the organization.
    """
    if get_membership(db, organization_id=organization_id, user_id=user_id) is not None:
        raise errors.Conflict(message, details={"email": ["Already a member."]})


@dataclass(frozen=True)
class Access:
    """What the caller may do in one organization, as decided by require_access."""

    organization: Organization
    # None for a platform administrator who is not a member.
    membership: Membership | None
    permissions: frozenset[str]
    # Owners, and platform administrators, may manage the owner role.
    is_owner: bool
    # A platform administrator with an API session: every permission, whatever their membership.
    elevated: bool = False


def _access(organization: Organization, membership: Membership | None, *, elevated: bool) -> Access:
    if elevated:
        return Access(organization, membership, ALL_PERMISSIONS, is_owner=True, elevated=True)
    return Access(organization, membership, role_permissions(membership.role), is_owner=is_owner_role(membership.role))


def require_access(db: Session, *, user: User, organization_id: object, permission: str,
                   token_organization_id: object = None, via_access_token: bool = False) -> Access:
    """Decide whether `user` may use `permission` in the organization.

    A platform administrator signed in with an API session may do anything in any
    organization. With an access token (scope org:admin), the caller acts only as a
    member, and only in the organization the token was issued for.

    Raises:
        NotFound: no such organization, or the caller is not a member (ids do not leak).
        PermissionDenied: a member without the permission, or a token for another organization.
    """
    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    organization = get_organization(db, organization_id)
    if organization is None:
        raise errors.NotFound("Organization not found.")
    elevated = user.is_platform_admin and not via_access_token
    membership = get_membership(db, organization_id=organization.id, user_id=user.id)
    if membership is None:
        if elevated:
            return _access(organization, None, elevated=True)
        raise errors.NotFound("Organization not found.")
    if via_access_token and as_uuid(token_organization_id) != organization.id:
        raise errors.PermissionDenied("This access token was issued for another organization.")
    access = _access(organization, membership, elevated=elevated)
    require_permission(access, permission)
    return access


def require_permission(access: Access, permission: str) -> None:
    """Raises:
        PermissionDenied: the caller's role in the organization does not allow `permission`.
    """
    if permission not in access.permissions:
        raise errors.PermissionDenied(f"Your role in this organization does not allow {permission}.")


def require_role_within_reach(access: Access, role: Role) -> None:
    """Raises:
        PermissionDenied: `role` is the owner role and the caller is no owner, or it allows
            something the caller's role does not (see may_manage_role).
    """
    if may_manage_role(access.permissions, access.is_owner, role):
        return
    if is_owner_role(role):
        raise errors.PermissionDenied("Only owners can grant or take away the owner role.")
    raise errors.PermissionDenied(f"The role {role.name} allows more than your role does.")


def lock_organization(db: Session, organization_id: uuid.UUID) -> Organization:
    """The organization, its row locked until the transaction ends.

    Every membership and role change starts here, so that changes to one organization
    happen one after the other and each decides on what the previous one left: two owners
    demoting each other at once cannot leave none. PostgreSQL takes SELECT ... FOR UPDATE;
    SQLite, which ignores it, serialises every writer anyway (app/database.py).

    Raises:
        NotFound: the organization was deleted meanwhile.
    """
    organization = db.scalar(select(Organization).where(Organization.id == organization_id)
                             .with_for_update().execution_options(populate_existing=True))
    if organization is None:
        raise errors.NotFound("Organization not found.")
    return organization


def lock_access(db: Session, access: Access) -> Access:
    """Lock the organization (lock_organization), then decide the caller's access again on
    their membership as it is now: a change that waited for the lock must not act on a role
    the caller lost meanwhile.

    Raises:
        NotFound: the organization is gone, or the caller is no longer a member.
    """
    organization = lock_organization(db, access.organization.id)
    membership = None
    if access.membership is not None:
        membership = db.scalar(select(Membership).options(joinedload(Membership.role))
                               .where(Membership.id == access.membership.id)
                               .execution_options(populate_existing=True))
        if membership is None and not access.elevated:
            raise errors.NotFound("Organization not found.")
    return _access(organization, membership, elevated=access.elevated)


def owner_count(db: Session, organization_id: uuid.UUID) -> int:
    return db.scalar(select(func.count()).select_from(Membership)
                     .join(Role, Membership.role_id == Role.id)
                     .where(Membership.organization_id == organization_id, Role.builtin.is_(True),
                            Role.name == OWNER)) or 0


def is_last_owner(db: Session, membership: Membership) -> bool:
    """Whether the organization would have no owner without this membership's owner role.

    Decide it under lock_organization: the count is only stable while the row is locked.
    """
    return is_owner_role(membership.role) and owner_count(db, membership.organization_id) == 1


def _problems(*, name: str | None, slug: str | None, settings: dict[str, Any]) -> dict[str, list[str]]:
    """What is wrong with the given fields of an organization (None: not given)."""
    problems = settings_problems(settings)
    if slug is not None and (problem := slug_problem(slug)) is not None:
        problems["slug"] = [problem]
    if name is not None and not name.strip():
        problems["name"] = ["Must not be blank."]
    return problems


_SLUG_TAKEN = "An organization with this slug already exists."


@contextmanager
def _claiming_slug(db: Session, slug: str) -> Iterator[None]:
    """Add or rename to `slug` inside this block; it is flushed in a savepoint at its end.

    The up-front check gives the usual answer; the unique constraint decides between two
    requests that both found the slug free, and the loser gets the same 409, not a 500.
    """
    with db.no_autoflush:
        taken = db.scalar(select(func.count()).select_from(Organization).where(Organization.slug == slug))
    if taken:
        raise errors.Conflict(_SLUG_TAKEN, details={"slug": ["Taken."]})
    try:
        with db.begin_nested():
            yield
            db.flush()
    except IntegrityError:
        raise errors.Conflict(_SLUG_TAKEN, details={"slug": ["Taken."]}) from None


def create_organization(db: Session, *, actor: Actor, name: str, slug: str,
                        settings: dict[str, Any] | None = None) -> Organization:
    """Create an organization with its built-in roles; the acting user becomes its owner.

    Raises:
        ValidationFailed: bad name, slug or settings.
        Conflict: the slug is taken.
    """
    if actor.user is None:
        raise ValueError("an organization is created by a user")
    settings = dict(settings or {})
    if problems := _problems(name=name, slug=slug, settings=settings):
        raise errors.ValidationFailed(details=problems)
    organization = Organization(name=name.strip(), slug=slug, settings=settings)
    with _claiming_slug(db, slug):  # its flush also assigns organization.id for the roles
        db.add(organization)
    roles = {role_name: Role(organization_id=organization.id, name=role_name, description=description,
                             builtin=True, permissions=[])
             for role_name, (description, _) in BUILTIN_ROLES.items()}
    db.add_all(roles.values())
    db.flush()  # assign the owner role's id
    db.add(Membership(organization_id=organization.id, user_id=actor.user.id, role_id=roles[OWNER].id))
    db.flush()  # the membership exists before the caller lists the organization's members
    audit.record_event(db, actor=actor, action="org.created", organization_id=organization.id,
                       target_type="organization", target_id=organization.id, details={"slug": slug})
    return organization


def update_organization(db: Session, *, actor: Actor, access: Access, name: str | None = None,
                        slug: str | None = None, settings: dict[str, Any] | None = None) -> Organization:
    """Change the given fields. `settings` replaces the given keys and keeps the others.

    Decided under the organization's lock on the caller's current role, so concurrent
    settings changes do not overwrite each other.

    Raises:
        PermissionDenied: the caller lacks org:update.
        ValidationFailed, Conflict: as create_organization.
    """
    access = lock_access(db, access)
    require_permission(access, "org:update")
    organization = access.organization
    if problems := _problems(name=name, slug=slug, settings=settings or {}):
        raise errors.ValidationFailed(details=problems)
    changed = []
    if name is not None and name.strip() != organization.name:
        organization.name = name.strip()
        changed.append("name")
    if settings:
        merged = {**organization.settings, **settings}
        if merged != organization.settings:
            organization.settings = merged
            changed.append("settings")
    if slug is not None and slug != organization.slug:
        with _claiming_slug(db, slug):
            organization.slug = slug
        changed.append("slug")
    if changed:
        db.flush()  # bump updated_at before the caller dumps the organization
        audit.record_event(db, actor=actor, action="org.updated", organization_id=organization.id,
                           target_type="organization", target_id=organization.id, details={"fields": changed})
    return organization


def organization_token_key(organization_id: uuid.UUID) -> str:
    """The denylist entry that refuses every access token carrying this org_id (see verify_access_token)."""
    return f"org:{organization_id}"


def delete_organization(db: Session, *, actor: Actor, access: Access, denylist: TokenDenylist,
                        access_token_lifetime: int) -> None:
    """Delete the organization with its memberships, roles, invitations and clients, and
    revoke every token issued in it.

    Refresh tokens and codes go with the organization (ON DELETE CASCADE); access tokens
    are self-contained JWTs, so the organization's id is denied for as long as any of
    them can live: every access token carrying it is refused from now on.

    Raises:
        PermissionDenied: the caller (their role as it is under the lock) lacks org:delete.
    """
    access = lock_access(db, access)
    require_permission(access, "org:delete")
    organization = access.organization
    org_id = organization.id
    for client in db.scalars(select(OAuthClient).where(OAuthClient.organization_id == org_id)):
        clients.delete_client(db, actor=actor, client=client)
    audit.record_event(db, actor=actor, action="org.deleted", organization_id=org_id, target_type="organization",
                       target_id=org_id, details={"slug": organization.slug})
    # Children first: memberships reference roles, which go with the organization.
    for model in (Invitation, Membership, Role):
        db.execute(delete(model).where(model.organization_id == org_id).execution_options(synchronize_session=False))
    db.delete(organization)
    db.flush()
    longest = max(access_token_lifetime, MAX_CLIENT_ACCESS_TOKEN_LIFETIME) + CLOCK_SKEW_MARGIN
    revocations.deny_token(db, denylist=denylist, key=organization_token_key(org_id),
                           expires_at=int(time.time()) + longest)


def organizations_of(db: Session, *, user_id: uuid.UUID) -> list[Membership]:
    """The user's memberships with their organizations and roles, by organization name."""
    return list(db.scalars(
        select(Membership).join(Membership.organization)
        .options(contains_eager(Membership.organization), joinedload(Membership.role))
        .where(Membership.user_id == user_id).order_by(Organization.name, Organization.slug)))


@dataclass(frozen=True)
class UserOrganization:
    """One of a user's organizations: the membership (organization, role, since when) and what it allows."""

    membership: Membership
    # Sorted, as the role allows them (built-in roles: from code).
    permissions: list[str]


def user_organizations(db: Session, *, user_id: uuid.UUID) -> list[UserOrganization]:
    """The user's organizations with their role and permissions in each, by organization name."""
    return [UserOrganization(membership, sorted(role_permissions(membership.role)))
            for membership in organizations_of(db, user_id=user_id)]
