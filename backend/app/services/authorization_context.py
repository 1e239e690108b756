"""Which organization an authorization happens in, and what its tokens say about it.

An authorization request may name an organization (`organization=<id or slug>`); a
client owned by an organization implies its own; a person signed in through an
organization's own connection (single sign-on) is in that organization; a client with
organization_required makes the user pick one of theirs. Tokens issued in an
organization carry its claims (org_id, org_slug, org_name and, for a user, org_roles),
read from the membership at the moment they are issued.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app import errors
from app.models import IdentityProvider, Membership, OAuthClient, Organization, User
from app.services.organizations import find_organization, get_membership, get_organization, organizations_of

# The scope under which UserInfo returns the organization claims (tokens carry them regardless).
ORGANIZATION_SCOPE = "organization"
ORGANIZATION_CLAIMS = ("org_id", "org_slug", "org_name", "org_roles")

# One message whether the organization is unknown, foreign to the client, or the user is
# not in it: the answer must not tell a caller which organizations exist.
NOT_AVAILABLE = "The requested organization is not available to this user for this application."
NO_ORGANIZATION = "This application requires an organization, and the user belongs to none."


@dataclass(frozen=True)
class OrganizationChoice:
    """The outcome of choose_organization: an organization, none at all, or the user must pick."""

    organization: Organization | None
    # When the user must pick: their memberships, by organization name.
    candidates: tuple[Membership, ...] = ()
    # The organization is the user's answer on the picker (not named by the request).
    from_picker: bool = False

    @property
    def needs_choice(self) -> bool:
        return self.organization is None and bool(self.candidates)


def choose_organization(db: Session, *, user: User, client: OAuthClient, requested: str | None,
                        picked: str | None = None, identity_provider_id: uuid.UUID | None = None
                        ) -> OrganizationChoice:
    """The organization an authorization of `client` by `user` happens in.

    `requested` is the request's `organization` parameter (an id or a slug); an empty
    value counts as absent (RFC 6749 §3.1). A named organization always wins: nothing
    else (login_hint, the user's email domain, a picker answer) replaces it. `picked` is
    the user's answer on the organization picker: it counts only when the request named
    none, and is checked exactly like a named one. Without either, an organization-
    owned client implies its own; then a browser session signed in through an
    organization's own connection (`identity_provider_id`, the session's) is in that
    organization when the user is a member of it, so a relying party sees the org context
    of an SSO sign-in without asking for it; then a client with organization_required
    takes the user's only membership, or asks the user to pick among several.

    Raises:
        PermissionDenied: the named organization is unknown, is not the client's own (for an
            organization-owned client), or the user is not a member of it; or the client
            needs an organization and the user has none.
    """
    from_picker = bool(picked) and not requested
    requested = requested or picked
    if requested:
        organization = find_organization(db, requested)
        if organization is None or (client.organization_id is not None
                                    and organization.id != client.organization_id):
            raise errors.PermissionDenied(NOT_AVAILABLE)
    elif client.organization_id is not None:
        organization = get_organization(db, client.organization_id)
    elif (signed_in_to := _sso_organization(db, identity_provider_id=identity_provider_id, user=user)) is not None:
        return OrganizationChoice(organization=signed_in_to)
    elif client.organization_required:
        memberships = organizations_of(db, user_id=user.id)
        if not memberships:
            raise errors.PermissionDenied(NO_ORGANIZATION)
        if len(memberships) > 1:
            return OrganizationChoice(organization=None, candidates=tuple(memberships))
        return OrganizationChoice(organization=memberships[0].organization)
    else:
        return OrganizationChoice(organization=None)
    if organization is None or get_membership(db, organization_id=organization.id, user_id=user.id) is None:
        raise errors.PermissionDenied(NOT_AVAILABLE)
    return OrganizationChoice(organization=organization, from_picker=from_picker)


def _sso_organization(db: Session, *, identity_provider_id: uuid.UUID | None, user: User) -> Organization | None:
    """The organization whose own connection the session signed in through, if the user is its member."""
    provider = db.get(IdentityProvider, identity_provider_id) if identity_provider_id else None
    if provider is None or provider.organization_id is None:
        return None
    if get_membership(db, organization_id=provider.organization_id, user_id=user.id) is None:
        return None
    return get_organization(db, provider.organization_id)


def _organization_claims(organization: Organization) -> dict[str, Any]:
    return {"org_id": str(organization.id), "org_slug": organization.slug, "org_name": organization.name}


def member_claims(db: Session, *, organization_id: uuid.UUID | str, user: User) -> dict[str, Any] | None:
    """The organization claims for `user` as a member now: org_id, org_slug, org_name and
    org_roles (the names of the membership's roles); None if the organization or the
    membership is gone."""
    organization = get_organization(db, organization_id)
    if organization is None:
        return None
    membership = get_membership(db, organization_id=organization.id, user_id=user.id)
    if membership is None:
        return None
    return _organization_claims(organization) | {"org_roles": [membership.role.name]}


def require_member_claims(db: Session, *, organization_id: uuid.UUID, user: User) -> dict[str, Any]:
    """member_claims for a token about to be issued in an organization (a code redeemed,
    a refresh token used): the user must still be a member.

    Raises:
        PermissionDenied: the user is no longer a member, or the organization is gone.
    """
    claims = member_claims(db, organization_id=organization_id, user=user)
    if claims is None:
        raise errors.PermissionDenied("The user is no longer a member of the organization of this grant.")
    return claims


def client_claims(db: Session, *, client: OAuthClient) -> dict[str, Any]:
    """The organization claims of a token issued to the client itself (client credentials):
    those of the organization that owns it, without org_roles (no user is involved);
    empty for a platform client."""
    if client.organization_id is None:
        return {}
    organization = get_organization(db, client.organization_id)
    return _organization_claims(organization) if organization is not None else {}
