"""OAuth clients' lifecycle: registration, lookups, updates, secret rotation and deletion.

What a client may be is decided by services.client_rules, which creation and updates both run on
the client's complete resulting settings.

Secrets are generated here, returned once in an `IssuedClient` and stored only
as SHA-256 (DESIGN.md, "Secrets at rest"); `OAuthClient.check_client_secret`
compares them in constant time.

A client is a platform client (organization_id None), managed by platform
administrators, or belongs to one organization, whose admins manage it through
services.organization_clients (which checks their permission, then scopes every lookup
with `require_organization_client` and `list_clients`). Only `list_all_clients` lists
every client.

The protocol endpoints read clients through the client cache (stores.client_cache), which sees
every committed change by itself: nothing here tells it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from app import errors
from app.models import OAuthClient, TokenEndpointAuthMethod
from app.models.base import utcnow
from app.security.tokens import hash_token, new_token
from app.services import audit, client_rules
from app.services.actor import Actor
from app.services.pagination import paginate

# The fields update_client may change; the type and authentication method are fixed at creation.
UPDATABLE_FIELDS = frozenset({
    "name", "redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes", "first_party", "jwks",
    "id_token_signed_response_alg", "access_token_lifetime", "refresh_token_lifetime", "organization_required",
})
# Settings that client_rules.configuration_problems does not look at: any value of their type is valid.
_UNCHECKED_FIELDS = frozenset({"organization_required"})


@dataclass(frozen=True)
class IssuedClient:
    client: OAuthClient
    # The plain client secret: returned to the caller once and never stored. None when the
    # client has no secret (public and private_key_jwt clients).
    client_secret: str | None


def create_client(db: Session, *, actor: Actor, name: str, client_type: str, redirect_uris: Iterable[str],
                  post_logout_redirect_uris: Iterable[str] = (), grant_types: Iterable[str],
                  scopes: Iterable[str], token_endpoint_auth_method: str | None = None,
                  jwks: dict[str, Any] | None = None, first_party: bool = False,
                  id_token_signed_response_alg: str = "RS256", access_token_lifetime: int | None = None,
                  refresh_token_lifetime: int | None = None, organization_id: uuid.UUID | None = None,
                  organization_required: bool = False) -> IssuedClient:
    """Register a client and return it with its secret, which is never shown again.

    `token_endpoint_auth_method` defaults to none for public clients and
    client_secret_basic for confidential ones. Public clients always require PKCE;
    so do confidential ones (RFC 9700 §2.1.1). `organization_id` makes the client
    that organization's (None: a platform client); organization clients cannot be
    first_party. `organization_required` makes every authorization of the client
    happen in an organization.

    Raises:
        ValidationFailed: the configuration breaks a rule; details per field.
    """
    if token_endpoint_auth_method is None:
        token_endpoint_auth_method = (TokenEndpointAuthMethod.NONE if client_type == "public"
                                      else TokenEndpointAuthMethod.CLIENT_SECRET_BASIC)
    redirect_uris, grant_types = client_rules.unique(redirect_uris), client_rules.unique(grant_types)
    scopes = client_rules.unique(scopes)
    post_logout_redirect_uris = client_rules.unique(post_logout_redirect_uris)
    problems = client_rules.configuration_problems(
        name=name, client_type=client_type, token_endpoint_auth_method=token_endpoint_auth_method,
        redirect_uris=redirect_uris, post_logout_redirect_uris=post_logout_redirect_uris,
        grant_types=grant_types, scopes=scopes, jwks=jwks, id_token_signed_response_alg=id_token_signed_response_alg,
        access_token_lifetime=access_token_lifetime, refresh_token_lifetime=refresh_token_lifetime,
        first_party=first_party, organization_id=organization_id)
    if problems:
        raise errors.ValidationFailed(details=problems)

    secret = new_token(32) if token_endpoint_auth_method in client_rules.SECRET_METHODS else None
    client = OAuthClient(
        client_id=new_token(16),
        client_secret_hash=hash_token(secret) if secret else None,
        name=name.strip(),
        organization_id=organization_id,
        organization_required=organization_required,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris,
        grant_types=grant_types,
        response_types=client_rules.response_types(grant_types),
        scopes=scopes,
        token_endpoint_auth_method=str(token_endpoint_auth_method),
        jwks=jwks,
        require_pkce=True,
        first_party=first_party,
        id_token_signed_response_alg=id_token_signed_response_alg,
        access_token_lifetime=access_token_lifetime,
        refresh_token_lifetime=refresh_token_lifetime,
    )
    db.add(client)
    db.flush()  # assign id and timestamps before the caller dumps the client
    audit.record_event(db, actor=actor, organization_id=client.organization_id, action="client.created",
                       target_type="client", target_id=client.client_id,
                       details={"name": client.name, "client_type": client_type,
                                "token_endpoint_auth_method": client.token_endpoint_auth_method,
                                "grant_types": grant_types})
    return IssuedClient(client=client, client_secret=secret)


def get_client(db: Session, client_id: str) -> OAuthClient | None:
    """The client with this client_id, or None."""
    return db.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def find_platform_client_by_name(db: Session, name: str) -> OAuthClient | None:
    """The first platform client (no organization's) registered under this exact name, or None
    (names are not unique, and an organization may use any name for its own clients)."""
    return db.scalar(select(OAuthClient).where(OAuthClient.name == name, OAuthClient.organization_id.is_(None))
                     .order_by(OAuthClient.created_at).limit(1))


def require_client(db: Session, client_id: str) -> OAuthClient:
    """The client with this client_id.

    Raises:
        NotFound: no such client.
    """
    client = get_client(db, client_id)
    if client is None:
        raise errors.NotFound("Client not found.")
    return client


def require_organization_client(db: Session, *, organization_id: uuid.UUID, client_id: str) -> OAuthClient:
    """The client with this client_id if the organization owns it.

    Raises:
        NotFound: no such client in this organization (another organization's client
            and a platform client are not found either: ids do not leak).
    """
    if organization_id is None:
        # `organization_id == None` would compare as IS NULL and find platform clients.
        raise ValueError("an organization's client is looked up with its organization's id")
    client = db.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id,
                                                 OAuthClient.organization_id == organization_id))
    if client is None:
        raise errors.NotFound("Client not found.")
    return client


def _oldest_first(stmt: Select[OAuthClient]) -> Select[OAuthClient]:
    return stmt.order_by(OAuthClient.created_at, OAuthClient.client_id)


def list_clients(db: Session, *, organization_id: uuid.UUID, page: int,
                 per_page: int) -> tuple[list[OAuthClient], int]:
    """One page of the organization's clients, oldest first, and how many it has.

    Raises:
        ValueError: no organization_id (every client is list_all_clients, for platform administrators).
    """
    if organization_id is None:
        # `organization_id == None` would compare as IS NULL and list platform clients.
        raise ValueError("an organization's clients are listed with its organization's id")
    return paginate(db, _oldest_first(select(OAuthClient).where(OAuthClient.organization_id == organization_id)),
                    page=page, per_page=per_page)


def list_all_clients(db: Session, *, page: int, per_page: int) -> tuple[list[OAuthClient], int]:
    """One page of every client, platform and organization ones, oldest first, and how many there are.

    The platform administrators' view: callers decide that the caller is one.
    """
    return paginate(db, _oldest_first(select(OAuthClient)), page=page, per_page=per_page)


def update_client(db: Session, *, actor: Actor, client: OAuthClient, **changes: Any) -> OAuthClient:
    """Change the given fields (see UPDATABLE_FIELDS); omitted fields keep their values.

    The whole resulting configuration is checked as on creation (so an organization's
    client cannot become first_party). Lifetimes and jwks may be set to None (the
    server default, and no keys). Changing the grant types recomputes the response types.

    Raises:
        ValidationFailed: the resulting configuration breaks a rule; details per field.
        TypeError: a field that cannot be updated was passed.
    """
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise TypeError(f"update_client() cannot change: {', '.join(sorted(unknown))}")
    for field in ("redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes"):
        if field in changes:
            changes[field] = client_rules.unique(changes[field])
    merged = {field: changes.get(field, getattr(client, field)) for field in UPDATABLE_FIELDS}
    problems = client_rules.configuration_problems(
        client_type=client_rules.client_type_of(client),
        token_endpoint_auth_method=client.token_endpoint_auth_method,
        organization_id=client.organization_id, jwks_changed="jwks" in changes,
        **{k: v for k, v in merged.items() if k not in _UNCHECKED_FIELDS})
    if problems:
        raise errors.ValidationFailed(details=problems)

    if "name" in changes:
        changes["name"] = changes["name"].strip()
    changed = sorted(field for field, value in changes.items() if getattr(client, field) != value)
    for field in changed:
        setattr(client, field, changes[field])
    if "grant_types" in changed:
        client.response_types = client_rules.response_types(client.grant_types)
    if changed:
        db.flush()  # bump updated_at before the caller dumps the client
        # Field names only: values may be long (URIs, keys) and the trail records who changed what.
        audit.record_event(db, actor=actor, organization_id=client.organization_id, action="client.updated",
                           target_type="client",
                           target_id=client.client_id, details={"fields": changed})
    return client


def rotate_client_secret(db: Session, *, actor: Actor, client: OAuthClient) -> IssuedClient:
    """Replace the client's secret with a new one; the old secret stops working at once.

    Raises:
        Conflict: the client has no secret (public or private_key_jwt), or another
            rotation of the same client committed first.
    """
    if client.token_endpoint_auth_method not in client_rules.SECRET_METHODS:
        raise errors.Conflict(
            f"This client authenticates with {client.token_endpoint_auth_method} and has no secret to rotate."
            + (" Update its jwks instead." if client.token_endpoint_auth_method == "private_key_jwt" else ""),
            details={"token_endpoint_auth_method": [client.token_endpoint_auth_method]})
    secret = new_token(32)
    # Conditional on the hash we read, so of two concurrent rotations exactly one
    # wins and no caller is handed a secret that is already dead.
    rotated = db.execute(
        update(OAuthClient)
        .where(OAuthClient.id == client.id, OAuthClient.client_secret_hash == client.client_secret_hash)
        .values(client_secret_hash=hash_token(secret), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if rotated.rowcount != 1:
        raise errors.Conflict("The secret was rotated concurrently; retry to get a fresh one.")
    db.refresh(client)
    audit.record_event(db, actor=actor, organization_id=client.organization_id, action="client.secret_rotated",
                       target_type="client",
                       target_id=client.client_id)
    return IssuedClient(client=client, client_secret=secret)


def delete_client(db: Session, *, actor: Actor, client: OAuthClient) -> None:
    """Delete the client; its codes, refresh tokens and consents go with it (ON DELETE CASCADE).

    Access tokens already issued are self-contained JWTs and stay valid until they expire.
    """
    audit.record_event(db, actor=actor, organization_id=client.organization_id, action="client.deleted",
                       target_type="client", target_id=client.client_id,
                       details={"name": client.name})
    db.delete(client)
