"""Roles: listing an organization's roles, and defining its custom ones.

Built-in roles (owner, admin, member) come with every organization, take their
permissions from code (services.organizations.BUILTIN_ROLES) and never change. Custom
roles hold a subset of the permission catalogue; nobody defines or edits a role that
allows more than they hold (services.organizations.may_grant_permissions). Every change
starts with `lock_access`, as membership changes do, so that a role is not deleted while
someone is being given it, and the caller acts on their current role.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import errors
from app.models import Membership, Role
from app.models.organization import ROLE_NAME
from app.models.base import as_uuid
from app.services import audit
from app.services.actor import Actor
from app.services.organizations import (
    ALL_PERMISSIONS,
    BUILTIN_ROLES,
    Access,
    lock_access,
    may_grant_permissions,
    require_permission,
    require_in_organization,
    require_role_within_reach,
    role_permissions,
)



@dataclass(frozen=True)
class RoleDetails:
    """A role as the API shows it: with what it allows and how many members hold it."""

    role: Role
    # Sorted; for built-in roles, their permissions from code.
    permissions: list[str]
    member_count: int


def role_name_problem(name: str) -> str | None:
    """Why `name` is not a usable custom role name, or None (taken names are a Conflict, not a problem)."""
    if not ROLE_NAME.fullmatch(name):
        return "Use 1-64 lower-case letters, digits, hyphens and underscores, starting with a letter or digit."
    if as_uuid(name) is not None:
        # Members are given a role by name or by id; the two must not collide.
        return "Must not look like a role id."
    return None


def _member_counts(db: Session, organization_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """How many members hold each of the organization's roles (roles nobody holds are missing)."""
    rows = db.execute(select(Membership.role_id, func.count()).where(Membership.organization_id == organization_id)
                      .group_by(Membership.role_id))
    return {role_id: count for role_id, count in rows}


def _member_count(db: Session, role: Role) -> int:
    return db.scalar(select(func.count()).select_from(Membership).where(Membership.role_id == role.id)) or 0


def list_roles(db: Session, *, organization_id: uuid.UUID) -> list[RoleDetails]:
    """The organization's roles: the built-in ones (owner, admin, member), then custom ones by name."""
    builtin_order = list(BUILTIN_ROLES)
    found = db.scalars(select(Role).where(Role.organization_id == organization_id))
    ordered = sorted(found, key=lambda r: (0, builtin_order.index(r.name), "") if r.builtin else (1, 0, r.name))
    counts = _member_counts(db, organization_id)
    return [RoleDetails(role, sorted(role_permissions(role)), counts.get(role.id, 0)) for role in ordered]


def require_role(db: Session, *, organization_id: uuid.UUID, role_id: object) -> Role:
    """The organization's role with this id (a UUID or its string).

    Raises:
        NotFound: no such role in this organization (or the id is malformed).
    """
    return require_in_organization(db, Role, organization_id=organization_id, row_id=role_id,
                                   not_found="Role not found.")


def _checked_permissions(access: Access, permissions: Iterable[str]) -> list[str]:
    """The permissions, sorted and without repeats, once they are known and within the caller's reach.

    Raises:
        ValidationFailed: unknown permissions, listed.
        PermissionDenied: permissions the caller's own role does not allow.
    """
    wanted = frozenset(permissions)
    unknown = sorted(wanted - ALL_PERMISSIONS)
    if unknown:
        raise errors.ValidationFailed(details={"permissions": [f"Unknown permissions: {', '.join(unknown)}."]})
    if not may_grant_permissions(access.permissions, access.is_owner, wanted):
        beyond = sorted(wanted - access.permissions)
        raise errors.PermissionDenied(f"Your role does not allow {', '.join(beyond)}, so you cannot grant it.")
    return sorted(wanted)


def _require_free_name(db: Session, *, organization_id: uuid.UUID, name: str) -> None:
    """Raises:
        ValidationFailed: the name has the wrong shape.
        Conflict: a built-in role or another role of the organization has this name.
    """
    if (problem := role_name_problem(name)) is not None:
        raise errors.ValidationFailed(details={"name": [problem]})
    if name in BUILTIN_ROLES:
        raise errors.Conflict(f"{name} is a built-in role.", details={"name": ["Taken by a built-in role."]})
    if db.scalar(select(func.count()).select_from(Role).where(Role.organization_id == organization_id,
                                                              Role.name == name)):
        raise errors.Conflict("A role with this name already exists.", details={"name": ["Taken."]})


def create_role(db: Session, *, actor: Actor, access: Access, name: str, permissions: Iterable[str],
                description: str = "") -> RoleDetails:
    """Define a custom role.

    Raises:
        PermissionDenied: the caller lacks roles:write, or a permission their own role does not allow.
        ValidationFailed: a bad name, or unknown permissions.
        Conflict: the name is taken (by a built-in role or another role).
    """
    access = lock_access(db, access)
    require_permission(access, "roles:write")
    organization = access.organization
    permissions = _checked_permissions(access, permissions)
    _require_free_name(db, organization_id=organization.id, name=name)
    role = Role(organization_id=organization.id, name=name, description=description, builtin=False,
                permissions=permissions)
    db.add(role)
    db.flush()  # assign role.id for the audit event
    audit.record_event(db, actor=actor, action="role.created", organization_id=organization.id, target_type="role",
                       target_id=role.id, details={"name": name, "permissions": permissions})
    return RoleDetails(role, sorted(role_permissions(role)), 0)


def _custom_role_in_reach(db: Session, access: Access, role_id: object, verb: str) -> tuple[Access, Role]:
    """Lock the organization, then the caller's fresh access and the custom role they may change.

    Raises:
        PermissionDenied, NotFound, Conflict: as update_role and delete_role.
    """
    access = lock_access(db, access)
    require_permission(access, "roles:write")
    role = require_role(db, organization_id=access.organization.id, role_id=role_id)
    if role.builtin:
        raise errors.Conflict(f"Built-in roles cannot be {verb}.")
    require_role_within_reach(access, role)
    return access, role


def update_role(db: Session, *, actor: Actor, access: Access, role_id: object, name: str | None = None,
                description: str | None = None, permissions: Iterable[str] | None = None) -> RoleDetails:
    """Change a custom role's name, description or permissions; its members get the new permissions at once.

    Raises:
        PermissionDenied: the caller lacks roles:write, the role allows more than the caller's
            own, or the new permissions do.
        NotFound: no such role.
        Conflict: the role is built in, or the new name is taken.
        ValidationFailed: a bad name, or unknown permissions.
    """
    access, role = _custom_role_in_reach(db, access, role_id, "changed")
    organization = access.organization
    changed = {}
    if permissions is not None:
        permissions = _checked_permissions(access, permissions)
        if permissions != sorted(role.permissions):
            changed["permissions"] = permissions
    if name is not None and name != role.name:
        _require_free_name(db, organization_id=organization.id, name=name)
        changed["name"] = name
    if description is not None and description != role.description:
        changed["description"] = description
    if changed:
        details = {"name": changed.get("name", role.name), "fields": sorted(changed)}
        if "name" in changed:
            details["old_name"] = role.name
        if "permissions" in changed:
            details["permissions"] = changed["permissions"]
        for field, value in changed.items():
            setattr(role, field, value)
        audit.record_event(db, actor=actor, action="role.updated", organization_id=organization.id,
                           target_type="role", target_id=role.id, details=details)
    return RoleDetails(role, sorted(role_permissions(role)), _member_count(db, role))


def delete_role(db: Session, *, actor: Actor, access: Access, role_id: object) -> None:
    """Delete a custom role that nobody holds; invitations to it go with it (ON DELETE CASCADE).

    Raises:
        PermissionDenied: the caller lacks roles:write, or the role allows more than the caller's own.
        NotFound: no such role.
        Conflict: the role is built in, or members still hold it.
    """
    access, role = _custom_role_in_reach(db, access, role_id, "deleted")
    organization = access.organization
    holders = _member_count(db, role)
    if holders:
        raise errors.Conflict(f"{holders} member(s) still hold this role; give them another role first.",
                              details={"member_count": holders})
    audit.record_event(db, actor=actor, action="role.deleted", organization_id=organization.id, target_type="role",
                       target_id=role.id, details={"name": role.name})
    db.delete(role)
