"""An organization's OAuth clients, as its members manage them.

Each function takes the caller's `Access` (services.organizations.require_access),
checks clients:read or clients:write on it, and only ever finds the organization's own
clients: another organization's client and a platform client are NotFound, as unknown
ones are (ids do not leak). Changes start with `lock_access`, as membership and role
changes do, so the caller acts on their current role. The client rules themselves are
services.client_rules, the platform administrators' functions services.clients.

(A module of its own because services.organizations imports services.clients, to
delete an organization's clients with it.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.models import OAuthClient
from app.services import clients
from app.services.actor import Actor
from app.services.clients import IssuedClient
from app.services.organizations import Access, lock_access, require_permission


def list_organization_clients(db: Session, *, access: Access, page: int,
                              per_page: int) -> tuple[list[OAuthClient], int]:
    """One page of the organization's clients, oldest first, and how many it has.

    Raises:
        PermissionDenied: the caller lacks clients:read.
    """
    require_permission(access, "clients:read")
    return clients.list_clients(db, organization_id=access.organization.id, page=page, per_page=per_page)


def get_organization_client(db: Session, *, access: Access, client_id: str) -> OAuthClient:
    """The organization's client with this client_id.

    Raises:
        PermissionDenied: the caller lacks clients:read.
        NotFound: no such client in this organization.
    """
    require_permission(access, "clients:read")
    return clients.require_organization_client(db, organization_id=access.organization.id, client_id=client_id)


def _client_to_change(db: Session, access: Access, client_id: str) -> OAuthClient:
    """Lock the organization, then the client the caller, with their current role, may change.

    Raises:
        NotFound: the caller is no longer a member, or no such client in this organization.
        PermissionDenied: the caller lacks clients:write.
    """
    access = lock_access(db, access)
    require_permission(access, "clients:write")
    return clients.require_organization_client(db, organization_id=access.organization.id, client_id=client_id)


def create_organization_client(db: Session, *, actor: Actor, access: Access, **settings: Any) -> IssuedClient:
    """Register a client of the organization (services.clients.create_client's settings, which
    refuse first_party for it) and return it with its secret, which is never shown again.

    Raises:
        NotFound: the caller is no longer a member.
        PermissionDenied: the caller lacks clients:write.
        ValidationFailed: as create_client.
    """
    access = lock_access(db, access)
    require_permission(access, "clients:write")
    return clients.create_client(db, actor=actor, organization_id=access.organization.id, **settings)


def update_organization_client(db: Session, *, actor: Actor, access: Access, client_id: str,
                               **changes: Any) -> OAuthClient:
    """Change the given settings of the organization's client (services.clients.update_client).

    Raises:
        NotFound, PermissionDenied: as _client_to_change.
        ValidationFailed: as update_client.
    """
    client = _client_to_change(db, access, client_id)
    return clients.update_client(db, actor=actor, client=client, **changes)


def rotate_organization_client_secret(db: Session, *, actor: Actor, access: Access, client_id: str) -> IssuedClient:
    """Replace the secret of the organization's client (services.clients.rotate_client_secret).

    Raises:
        NotFound, PermissionDenied: as _client_to_change.
        Conflict: as rotate_client_secret (no secret to rotate, or a concurrent rotation).
    """
    client = _client_to_change(db, access, client_id)
    return clients.rotate_client_secret(db, actor=actor, client=client)


def delete_organization_client(db: Session, *, actor: Actor, access: Access, client_id: str) -> None:
    """Delete the organization's client with its codes, refresh tokens and consents
    (services.clients.delete_client).

    Raises:
        NotFound, PermissionDenied: as _client_to_change.
    """
    clients.delete_client(db, actor=actor, client=_client_to_change(db, access, client_id))
