"""An organization's email domains: claimed, proved with a DNS TXT record, routed to a connection, and
enforcing single sign-on.

Management follows services.organization_connections: each function takes the caller's `Access`, checks
connections:read or connections:write (domains are part of the organization's single sign-on set-up),
and only ever finds the organization's own domains, so another organization's domain is NotFound.

The sign-in side lives here too, so that each rule has one home:
- `routed_connection`: the connection a verified, auto-redirecting domain sends its people to;
- `sign_in_refusal`: whether a password, a platform provider or a registration is refused because the
  email's domain enforces single sign-on (platform administrators excepted: break-glass);
- `require_assertable_email`: an organization's connection may assert only emails in the organization's
  verified domains.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import errors
from app.models import IdentityProvider, OrganizationDomain, User
from app.models.base import utcnow
from app.security.tokens import new_token
from app.security.word_lists import word_list
from app.services import audit
from app.services.actor import Actor
from app.services.organizations import Access, lock_access, require_in_organization, require_permission
from app.services.pagination import paginate


class LookupFailed(Exception):
    """The DNS resolver did not answer (timeout, SERVFAIL, refused)."""


class TxtLookup(Protocol):
    def txt_records(self, name: str) -> list[str]:
        """Every TXT record at `name`, [] when there is none.

        Raises:
            LookupFailed: the resolver did not answer.
        """


class SSORequired(errors.PermissionDenied):
    """The email's domain enforces single sign-on through its organization's connection."""

    message = ("Your organization requires single sign-on (SSO) for this email address: sign in through your "
               "organization's identity provider.")


def public_mail_domains() -> frozenset[str]:
    return word_list("public_mail_domains.txt")


def email_domain(email: str) -> str:
    """The domain part of an address, as domains are stored (lower case, no trailing dot)."""
    return email.rpartition("@")[2].strip().lower().rstrip(".")


# --- management (API) ---------------------------------------------------------------------------------


def _require_domain(db: Session, access: Access, domain_id: uuid.UUID) -> OrganizationDomain:
    return require_in_organization(db, OrganizationDomain, organization_id=access.organization.id, row_id=domain_id,
                                   not_found="Domain not found.")


def _record(db: Session, actor: Actor, domain: OrganizationDomain, action: str, *, result: str = "success",
            details: dict[str, Any] | None = None) -> None:
    audit.record_event(db, actor=actor, action=action, result=result, target_type="organization_domain",
                       target_id=domain.id, details={"domain": domain.domain, **(details or {})},
                       organization_id=domain.organization_id)


def list_domains(db: Session, *, access: Access, page: int, per_page: int) -> tuple[list[OrganizationDomain], int]:
    """One page of the organization's domains, in alphabetical order, and how many it has.

    Raises:
        PermissionDenied: the caller lacks connections:read.
    """
    require_permission(access, "connections:read")
    stmt = (select(OrganizationDomain).where(OrganizationDomain.organization_id == access.organization.id)
            .order_by(OrganizationDomain.domain))
    return paginate(db, stmt, page=page, per_page=per_page)


def get_domain(db: Session, *, access: Access, domain_id: uuid.UUID) -> OrganizationDomain:
    """The organization's domain with this id.

    Raises:
        PermissionDenied: the caller lacks connections:read.
        NotFound: no such domain in this organization.
    """
    require_permission(access, "connections:read")
    return _require_domain(db, access, domain_id)


def add_domain(db: Session, *, actor: Actor, access: Access, domain: str) -> OrganizationDomain:
    """Claim `domain` for the organization, unverified, with a new verification value to publish.

    Raises:
        NotFound: the caller is no longer a member.
        PermissionDenied: the caller lacks connections:write.
        ValidationFailed: a public mail provider's domain.
        Conflict: the organization claimed it already.
    """
    access = lock_access(db, access)
    require_permission(access, "connections:write")
    name = email_domain(domain)
    if name in public_mail_domains():
        raise errors.ValidationFailed(details={"domain": [
            "A public mail provider's domain: anyone may have an address there, so no organization may claim it."]})
    taken = db.scalar(select(OrganizationDomain.id).where(OrganizationDomain.organization_id == access.organization.id,
                                                          OrganizationDomain.domain == name))
    if taken is not None:
        raise errors.Conflict("This organization has claimed this domain already.")
    claimed = OrganizationDomain(organization_id=access.organization.id, domain=name, verification_token=new_token(),
                                 auto_redirect=False, enforce_sso=False)
    db.add(claimed)
    db.flush()
    _record(db, actor, claimed, "domain.added")
    return claimed


def _routing_conflict(db: Session, domain: OrganizationDomain) -> str | None:
    """Why the domain cannot enforce single sign-on as it stands, or None."""
    if not domain.enforce_sso:
        return None
    if not domain.verified:
        return "Verify the domain before enforcing single sign-on."
    provider = db.get(IdentityProvider, domain.identity_provider_id) if domain.identity_provider_id else None
    if provider is None or not provider.enabled:
        return "Route the domain to an enabled connection (identity_provider_id) before enforcing single sign-on."
    return None


def update_domain(db: Session, *, actor: Actor, access: Access, domain_id: uuid.UUID,
                  **changes: Any) -> OrganizationDomain:
    """Change the domain's routing: identity_provider_id (a connection of this organization, or None),
    auto_redirect, enforce_sso.

    Raises:
        NotFound: the caller is no longer a member, or no such domain in this organization.
        PermissionDenied: the caller lacks connections:write.
        ValidationFailed: identity_provider_id is not one of the organization's connections.
        Conflict: enforce_sso would hold for an unverified domain or one without an enabled connection.
    """
    access = lock_access(db, access)
    require_permission(access, "connections:write")
    domain = _require_domain(db, access, domain_id)
    provider_id = changes.get("identity_provider_id")
    if provider_id is not None:
        try:
            require_in_organization(db, IdentityProvider, organization_id=access.organization.id, row_id=provider_id,
                                    not_found="No such connection in this organization.")
        except errors.NotFound as missing:
            raise errors.ValidationFailed(details={"identity_provider_id": [missing.message]}) from None
    for name, value in changes.items():
        setattr(domain, name, value)
    if conflict := _routing_conflict(db, domain):
        raise errors.Conflict(conflict)
    db.flush()
    _record(db, actor, domain, "domain.updated", details={
        name: str(value) if isinstance(value, uuid.UUID) else value for name, value in changes.items()})
    return domain


def _claim(db: Session, *, actor: Actor, domain: OrganizationDomain, method: str, now: datetime) -> None:
    """Mark the domain verified, unless another organization verified it first (the unique index decides a race).

    Raises:
        Conflict: another organization verified this domain.
    """
    claimed_elsewhere = db.scalar(select(OrganizationDomain.id).where(
        OrganizationDomain.domain == domain.domain, OrganizationDomain.verified_at.is_not(None),
        OrganizationDomain.id != domain.id)) is not None
    if not claimed_elsewhere:
        try:
            with db.begin_nested():
                domain.verified_at = now
                db.flush()
        except IntegrityError:  # another organization's verification committed in between
            domain.verified_at = None
            claimed_elsewhere = True
    if claimed_elsewhere:
        _record(db, actor, domain, "domain.verification_failed", result="failure",
                details={"reason": "verified_by_another_organization", "method": method})
        raise errors.Conflict("Another organization has verified this domain.")
    _record(db, actor, domain, "domain.verified", details={"method": method})


def verify_domain(db: Session, *, actor: Actor, access: Access, domain_id: uuid.UUID, resolver: TxtLookup,
                  now: datetime | None = None) -> OrganizationDomain:
    """Verify the domain: its TXT record at _gatehouse-challenge.<domain> holds the verification value.
    A verified domain answers as it is. Failures are audited (domain.verification_failed) before the
    error is raised: the caller commits them.

    Raises:
        NotFound: the caller is no longer a member, or no such domain in this organization.
        PermissionDenied: the caller lacks connections:write.
        Conflict: the record is missing or holds another value, DNS did not answer, or another
            organization verified the domain.
    """
    access = lock_access(db, access)
    require_permission(access, "connections:write")
    domain = _require_domain(db, access, domain_id)
    if domain.verified:
        return domain
    try:
        records = resolver.txt_records(domain.challenge_name)
    except LookupFailed:
        reason, message = "dns_unavailable", f"The DNS lookup of {domain.challenge_name} failed; try again later."
    else:
        expected = domain.verification_token.encode()
        if any(hmac.compare_digest(record.strip().encode(), expected) for record in records):
            _claim(db, actor=actor, domain=domain, method="dns", now=now or utcnow())
            return domain
        reason, message = ("wrong_value", f"The TXT record at {domain.challenge_name} does not hold this domain's "
                                          "verification value.") if records else \
            ("no_record", f"There is no TXT record at {domain.challenge_name} yet.")
    _record(db, actor, domain, "domain.verification_failed", result="failure", details={"reason": reason})
    raise errors.Conflict(message)


def mark_verified(db: Session, *, actor: Actor, domain_id: uuid.UUID,
                  now: datetime | None = None) -> OrganizationDomain:
    """Mark a domain verified without DNS (platform administrators; the caller checks): audited as
    domain.verified with method "manual".

    Raises:
        NotFound: no such domain.
        Conflict: another organization verified it.
    """
    domain = db.get(OrganizationDomain, domain_id)
    if domain is None:
        raise errors.NotFound("Domain not found.")
    if not domain.verified:
        _claim(db, actor=actor, domain=domain, method="manual", now=now or utcnow())
    return domain


def delete_domain(db: Session, *, actor: Actor, access: Access, domain_id: uuid.UUID) -> None:
    """Give the domain up: its routing and enforcement end with it.

    Raises:
        NotFound, PermissionDenied: as update_domain.
    """
    access = lock_access(db, access)
    require_permission(access, "connections:write")
    domain = _require_domain(db, access, domain_id)
    _record(db, actor, domain, "domain.deleted")
    db.delete(domain)


def require_not_enforcing_through(db: Session, *, provider: IdentityProvider) -> None:
    """Before a connection is deleted or disabled: no domain may enforce single sign-on through it, or its
    people could sign in no way at all.

    Raises:
        Conflict: naming the domains that do.
    """
    enforcing = list(db.scalars(select(OrganizationDomain.domain).where(
        OrganizationDomain.identity_provider_id == provider.id, OrganizationDomain.enforce_sso.is_(True))
        .order_by(OrganizationDomain.domain)))
    if enforcing:
        raise errors.Conflict(f"{', '.join(enforcing)} enforce single sign-on through this connection: turn "
                              "enforce_sso off or route them to another connection first.",
                              details={"enforcing_domains": enforcing})


# --- sign-in ------------------------------------------------------------------------------------------


def verified_domain(db: Session, email: str) -> OrganizationDomain | None:
    """The verified domain of this address, whichever organization proved it, or None."""
    return db.scalar(select(OrganizationDomain).where(OrganizationDomain.domain == email_domain(email),
                                                      OrganizationDomain.verified_at.is_not(None)))


def enforced_connections(db: Session, *, organization_id: uuid.UUID) -> list[IdentityProvider]:
    """The enabled connections the organization's verified domains enforce single sign-on through."""
    # IN, not a DISTINCT join: PostgreSQL cannot compare the providers' json columns.
    enforcing = select(OrganizationDomain.identity_provider_id).where(
        OrganizationDomain.organization_id == organization_id, OrganizationDomain.verified_at.is_not(None),
        OrganizationDomain.enforce_sso.is_(True))
    return list(db.scalars(select(IdentityProvider).where(IdentityProvider.id.in_(enforcing),
                                                          IdentityProvider.enabled.is_(True))))


def routed_connection(db: Session, email: str) -> IdentityProvider | None:
    """The enabled connection a verified domain with auto_redirect sends this address to (home-realm
    discovery), or None. Depends on the domain only, never on whether an account has the address."""
    domain = verified_domain(db, email)
    if domain is None or not domain.auto_redirect or domain.identity_provider_id is None:
        return None
    provider = db.get(IdentityProvider, domain.identity_provider_id)
    return provider if provider is not None and provider.enabled else None


def sign_in_refusal(db: Session, *, email: str, user: User | None) -> SSORequired | None:
    """The one decision on ways around single sign-on: a password sign-in, a sign-in through a platform
    provider and a registration are refused for an address whose verified domain enforces it, except
    for a platform administrator's account (break-glass)."""
    domain = verified_domain(db, email)
    if domain is None or not domain.enforce_sso or (user is not None and user.is_platform_admin):
        return None
    return SSORequired()


def require_assertable_email(db: Session, *, provider: IdentityProvider, email: str | None) -> None:
    """An organization's connection vouches only for addresses in the organization's verified domains:
    its IdP's administrators can create people with any address.

    Raises:
        FederationFailed: another address, or none.
    """
    domain = verified_domain(db, email) if email else None
    if domain is None or domain.organization_id != provider.organization_id:
        raise errors.FederationFailed("email_domain_not_verified", "This identity provider may not sign in "
                                                                   "people with this email address here.")
