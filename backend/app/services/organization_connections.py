"""An organization's own identity-provider connections (single sign-on), as its admins manage them.

Each function takes the caller's `Access` (services.organizations.require_access), checks
connections:read or connections:write on it, and only ever finds the organization's own connections:
another organization's connection and a platform-wide provider are NotFound, as unknown ones are.
Changes start with `lock_access`, so the caller acts on their current role. The provider rules themselves
are services.identity_providers'; here only what an organization may connect: saml, oidc, and microsoft
with one tenant (a multi-tenant Microsoft provider would let in people of any tenant), and roles that are
the organization's own.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import errors
from app.models import IdentityProvider, ProviderKind, Role
from app.security.crypto import FieldCipher
from app.services import identity_providers
from app.services.actor import Actor
from app.services.identity_providers import MULTI_TENANT, UpstreamChecks
from app.services.organizations import Access, lock_access, require_in_organization, require_permission
from app.services.pagination import paginate

ORGANIZATION_KINDS = frozenset({ProviderKind.SAML, ProviderKind.OIDC, ProviderKind.MICROSOFT})


def _role_problems(db: Session, organization_id: uuid.UUID, settings: dict[str, Any]) -> dict[str, list[str]]:
    """default_role and group_role_map must name roles of this organization."""
    wanted = {name for name in [settings.get("default_role"), *(settings.get("group_role_map") or {}).values()]
              if name}
    known = set(db.scalars(select(Role.name).where(Role.organization_id == organization_id, Role.name.in_(wanted))))
    problems: dict[str, list[str]] = {}
    if settings.get("default_role") and settings["default_role"] not in known:
        problems["default_role"] = ["No such role in this organization."]
    unknown = sorted(set((settings.get("group_role_map") or {}).values()) - known)
    if unknown:
        problems["group_role_map"] = [f"No such role in this organization: {', '.join(unknown)}."]
    return problems


def _kind_problems(kind: str, values: dict[str, Any]) -> dict[str, list[str]]:
    if kind not in ORGANIZATION_KINDS:
        return {"kind": ["An organization may connect saml, oidc or microsoft (one tenant) providers."]}
    if kind == ProviderKind.MICROSOFT and (values.get("tenant") or "").lower() in MULTI_TENANT | {"consumers"}:
        return {"tenant": ["An organization's Microsoft connection is one tenant: its tenant id (a GUID)."]}
    return {}


def list_connections(db: Session, *, access: Access, page: int, per_page: int) -> tuple[list[IdentityProvider], int]:
    """One page of the organization's connections, oldest first, and how many it has.

    Raises:
        PermissionDenied: the caller lacks connections:read.
    """
    require_permission(access, "connections:read")
    stmt = (select(IdentityProvider).where(IdentityProvider.organization_id == access.organization.id)
            .order_by(IdentityProvider.created_at, IdentityProvider.id))
    return paginate(db, stmt, page=page, per_page=per_page)


def _require_connection(db: Session, access: Access, provider_id: uuid.UUID) -> IdentityProvider:
    return require_in_organization(db, IdentityProvider, organization_id=access.organization.id, row_id=provider_id,
                                   not_found="Identity provider not found.")


def get_connection(db: Session, *, access: Access, provider_id: uuid.UUID) -> IdentityProvider:
    """The organization's connection with this id.

    Raises:
        PermissionDenied: the caller lacks connections:read.
        NotFound: no such connection in this organization.
    """
    require_permission(access, "connections:read")
    return _require_connection(db, access, provider_id)


def create_connection(db: Session, *, actor: Actor, access: Access, cipher: FieldCipher, upstream: UpstreamChecks,
                      kind: str, **fields: Any) -> IdentityProvider:
    """Connect an identity provider to the organization (identity_providers.create_provider's fields).

    Raises:
        NotFound: the caller is no longer a member.
        PermissionDenied: the caller lacks connections:write.
        ValidationFailed: a kind an organization may not connect, a role it does not have, or as create_provider.
    """
    access = lock_access(db, access)
    require_permission(access, "connections:write")
    problems = _kind_problems(kind, fields) or _role_problems(db, access.organization.id, fields)
    if problems:
        raise errors.ValidationFailed(details=problems)
    return identity_providers.create_provider(db, actor=actor, cipher=cipher, upstream=upstream, kind=kind,
                                              organization_id=access.organization.id, **fields)


def update_connection(db: Session, *, actor: Actor, access: Access, cipher: FieldCipher, upstream: UpstreamChecks,
                      provider_id: uuid.UUID, **changes: Any) -> IdentityProvider:
    """Change some of the organization's connection's settings (identity_providers.update_provider).

    Raises:
        NotFound: the caller is no longer a member, or no such connection in this organization.
        PermissionDenied: the caller lacks connections:write.
        ValidationFailed: as create_connection.
    """
    access = lock_access(db, access)
    require_permission(access, "connections:write")
    provider = _require_connection(db, access, provider_id)
    problems = _kind_problems(provider.kind, provider.settings | changes) or \
        _role_problems(db, access.organization.id, changes)
    if problems:
        raise errors.ValidationFailed(details=problems)
    return identity_providers.update_provider(db, actor=actor, cipher=cipher, upstream=upstream, provider=provider,
                                              **changes)


def delete_connection(db: Session, *, actor: Actor, access: Access, provider_id: uuid.UUID) -> None:
    """Delete the organization's connection (identity_providers.delete_provider).

    Raises:
        NotFound, PermissionDenied: as update_connection.
        Conflict: as delete_provider.
    """
    access = lock_access(db, access)
    require_permission(access, "connections:write")
    identity_providers.delete_provider(db, actor=actor, provider=_require_connection(db, access, provider_id))
