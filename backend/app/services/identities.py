"""Signing in through an upstream identity provider, and the external identities linked to accounts.

The adapters in app/federation speak to the upstream and hand over a VerifiedIdentity; the rules of
what it may do to our accounts live here:
- a person is found by (provider, subject) only, never by email;
- an unknown subject whose email no account has gets a new account (just in time) when the provider
  allows sign-up, its email verified only as far as the upstream proved it (through an organization's own
  connection: verified, the organization vouches for its people's addresses), and no password;
- an unknown subject whose email an account has is linked to it automatically only when the upstream
  proved the email, the provider is trusted for email and the account's own email is verified — and
  never to a platform administrator; otherwise the person signs in to that account with its password
  to link it (link_with_password);
- every session started through an organization's own connection (saml, oidc, microsoft) also settles the
  person's membership of that organization, just in time (memberships.sync_sso_membership).
Every failure raises FederationFailed before anything is written but its audit event (the caller
commits that), so nothing is half-created.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app import errors
from app.config import Settings
from app.models import ExternalIdentity, FederationState, IdentityProvider, SessionKind, User
from app.models.base import utcnow
from app.models.federation import MembershipSettings
from app.security.tokens import hash_token, new_token
from app.services import audit, authentication, domains, memberships, sessions, users
from app.services.actor import Actor
from app.services.organizations import find_organization

# The state of a sign-in sent upstream is good for this long (and once).
STATE_LIFETIME = timedelta(minutes=10)
# The OIDC amr value of a federated sign-in (RFC 8176 §2: "fed", federated authentication).
AMR_FEDERATED = "fed"


@dataclass(frozen=True)
class VerifiedIdentity:
    """Who an upstream vouches for: its stable subject, and the email only as far as it proved it."""

    subject: str
    email: str | None
    email_verified: bool
    name: str = ""
    amr: list[str] = field(default_factory=list)
    # The IdP's groups of the person (an organization's connection maps them to roles).
    groups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PendingSignIn:
    """What the browser keeps (in its signed session) while it is at the upstream."""

    state: str
    nonce: str
    code_verifier: str | None


@dataclass(frozen=True)
class PendingLink:
    """An identity waiting for the person to prove, with the account's password, that the account is theirs."""

    provider_id: uuid.UUID
    user_id: uuid.UUID
    identity: VerifiedIdentity
    expires_at: datetime


@dataclass(frozen=True)
class SignInOutcome:
    """Either a started session (`issued`) or an identity to link after re-authentication (`pending_link`)."""

    issued: sessions.IssuedSession | None = None
    pending_link: PendingLink | None = None


def enabled_platform_providers(db: Session) -> list[IdentityProvider]:
    """The providers the sign-in page offers: enabled and platform-wide."""
    return list(db.scalars(select(IdentityProvider).where(
        IdentityProvider.enabled.is_(True), IdentityProvider.organization_id.is_(None))
        .order_by(IdentityProvider.name)))


def enabled_provider(db: Session, provider_id: str | uuid.UUID | None) -> IdentityProvider | None:
    """The enabled provider with this id (as it came in a URL, perhaps not a UUID), platform-wide or an
    organization's own connection, or None."""
    try:
        key = provider_id if isinstance(provider_id, uuid.UUID) else uuid.UUID(str(provider_id))
    except ValueError:
        return None
    provider = db.get(IdentityProvider, key)
    return provider if provider is not None and provider.enabled else None


def enabled_platform_provider(db: Session, provider_id: str | uuid.UUID | None) -> IdentityProvider | None:
    """The enabled platform provider with this id (as it came in a URL, perhaps not a UUID), or None."""
    provider = enabled_provider(db, provider_id)
    return provider if provider is not None and provider.organization_id is None else None


def hinted_connection(db: Session, *, idp_hint: str | None, organization: str | None) -> IdentityProvider | None:
    """Where an authorization request that needs a sign-in sends the browser, if not to the sign-in page:
    `idp_hint=<provider id>` to that enabled platform provider (an unknown or disabled one: the page);
    otherwise `organization=<slug or id>` to its connection (organization_connection)."""
    return enabled_platform_provider(db, idp_hint) or organization_connection(db, organization)


def organization_connection(db: Session, organization: str | None) -> IdentityProvider | None:
    """The connection an authorization request's `organization=<slug or id>` sends a person to sign in
    with (issue 14 §2): the one its verified domains enforce single sign-on through; without one, its only
    enabled connection of its own. None when the organization is unknown, enforces several, or has no or
    several connections and enforces none (then the sign-in page is shown, identifier first)."""
    found = find_organization(db, organization) if organization else None
    if found is None:
        return None
    enforced = domains.enforced_connections(db, organization_id=found.id)
    if enforced:
        return enforced[0] if len(enforced) == 1 else None
    connections = list(db.scalars(select(IdentityProvider).where(
        IdentityProvider.organization_id == found.id, IdentityProvider.enabled.is_(True)).limit(2)))
    return connections[0] if len(connections) == 1 else None


def record_failure(db: Session, *, actor: Actor, provider: IdentityProvider | None, reason: str) -> None:
    """The federation.failed audit event: why and where, never a token or a code."""
    audit.record_event(db, actor=actor, action="federation.failed", result="failure",
                       target_type="identity_provider" if provider else None,
                       target_id=provider.id if provider else None, details={"reason": reason})


def start_sign_in(db: Session, *, provider: IdentityProvider, pkce: bool, now: datetime | None = None) -> PendingSignIn:
    """A new `state` (random, stored hashed, STATE_LIFETIME), `nonce` and PKCE verifier for a sign-in at
    `provider`."""
    now = now or utcnow()
    # The states nobody came back with: at most ten minutes' worth of sign-ins, so the table stays small.
    db.execute(delete(FederationState).where(FederationState.expires_at <= now)
               .execution_options(synchronize_session=False))
    state = new_token()
    db.add(FederationState(state_hash=hash_token(state), provider_id=provider.id, created_at=now,
                           expires_at=now + STATE_LIFETIME))
    return PendingSignIn(state=state, nonce=new_token(), code_verifier=new_token() if pkce else None)


def consume_state(db: Session, *, provider: IdentityProvider, returned: str | None, expected: str | None,
                  now: datetime | None = None) -> None:
    """Accept the `state` of an authorization response once: it must be the one this browser was sent
    with (`expected`, from its session), for this provider, unexpired and unused (RFC 6749 §10.12).

    Raises:
        FederationFailed: any of these does not hold.
    """
    now = now or utcnow()
    if not returned or not expected or not hmac.compare_digest(returned.encode(), expected.encode()):
        raise errors.FederationFailed("state_mismatch", "This sign-in was not started in this browser, or it "
                                                        "was already completed. Please try again.")
    deleted = db.execute(delete(FederationState).where(
        FederationState.state_hash == hash_token(returned), FederationState.provider_id == provider.id,
        FederationState.expires_at > now).execution_options(synchronize_session=False))
    if deleted.rowcount != 1:
        raise errors.FederationFailed("state_expired", "This sign-in took too long or was already completed. "
                                                       "Please try again.")


@dataclass(frozen=True)
class PendingSAMLRequest:
    """An AuthnRequest sent to a SAML IdP and not yet answered, as its RelayState finds it."""

    request_id: str
    next_url: str | None


def remember_saml_request(db: Session, *, provider: IdentityProvider, relay_state: str, request_id: str,
                          next_url: str | None, now: datetime | None = None) -> None:
    """Keep the AuthnRequest's ID and where to go next under the RelayState (a random key, stored hashed),
    for STATE_LIFETIME. Server-side: the IdP's answer is a cross-site POST, which carries no Lax cookie."""
    now = now or utcnow()
    db.execute(delete(FederationState).where(FederationState.expires_at <= now)
               .execution_options(synchronize_session=False))
    db.add(FederationState(state_hash=hash_token(relay_state), provider_id=provider.id, created_at=now,
                           expires_at=now + STATE_LIFETIME, saml_request_id=request_id, next_url=next_url))


def consume_saml_request(db: Session, *, provider: IdentityProvider, relay_state: str,
                         now: datetime | None = None) -> PendingSAMLRequest:
    """The pending AuthnRequest of this RelayState, removed: each is answered at most once.

    Raises:
        FederationFailed: no such request for this provider, or it expired.
    """
    now = now or utcnow()
    pending = db.scalar(select(FederationState).where(
        FederationState.state_hash == hash_token(relay_state), FederationState.provider_id == provider.id,
        FederationState.saml_request_id.is_not(None)))
    if pending is None or pending.expires_at <= now:
        raise errors.FederationFailed("state_expired", "This sign-in took too long or was already completed. "
                                                       "Please try again.")
    db.delete(pending)
    return PendingSAMLRequest(request_id=pending.saml_request_id or "", next_url=pending.next_url)


def answered_saml_request(db: Session, *, provider: IdentityProvider,
                          relay_state: str | None) -> PendingSAMLRequest | None:
    """The pending AuthnRequest a response to the ACS answers (removed: consume_saml_request), or None for an
    unsolicited (IdP-initiated) response, which only a connection with allow_idp_initiated accepts.

    Raises:
        FederationFailed: an unknown or expired RelayState; an unsolicited response the connection refuses.
    """
    if relay_state:
        return consume_saml_request(db, provider=provider, relay_state=relay_state)
    if not provider.kind_settings.allow_idp_initiated:  # type: ignore[attr-defined]
        raise errors.FederationFailed("saml_unsolicited", "Sign in from this site, not from the identity "
                                                          "provider's portal.")
    return None


def _session_through(db: Session, *, actor: Actor, user: User, provider: IdentityProvider,
                     identity: VerifiedIdentity, settings: Settings, previous_session_id: uuid.UUID | None,
                     now: datetime) -> sessions.IssuedSession:
    if not user.is_active:
        raise errors.FederationFailed("suspended", errors.AccountSuspended.message)
    if provider.organization_id is None and (sso_required := domains.sign_in_refusal(db, email=user.email, user=user)):
        raise errors.FederationFailed("sso_required", sso_required.message)
    issued = authentication.sign_in(db, actor=actor, user=user, settings=settings, kind=SessionKind.BROWSER,
                                    previous_session_id=previous_session_id, now=now,
                                    details={"method": "federation", "provider_id": str(provider.id)})
    # OIDC amr: "fed", then what the upstream said of its own authentication.
    issued.session.amr = [AMR_FEDERATED, *[value for value in identity.amr if value != AMR_FEDERATED]]
    issued.session.identity_provider_id = provider.id
    audit.record_event(db, actor=actor.as_user(user), action="federation.login", target_type="identity_provider",
                       target_id=provider.id)
    connection = provider.kind_settings
    if provider.organization_id is not None and isinstance(connection, MembershipSettings):
        memberships.sync_sso_membership(
            db, actor=actor, provider_id=provider.id, organization_id=provider.organization_id, user=user,
            default_role=connection.default_role, group_role_map=connection.group_role_map or {},
            jit_membership=connection.jit_membership, groups=identity.groups)
    return issued


def _link(db: Session, *, actor: Actor, user: User, provider: IdentityProvider, identity: VerifiedIdentity,
          how: str, now: datetime) -> ExternalIdentity:
    linked = ExternalIdentity(user_id=user.id, provider_id=provider.id, subject=identity.subject,
                              email=identity.email, created_at=now, last_used_at=now)
    db.add(linked)
    db.flush()
    audit.record_event(db, actor=actor.as_user(user), action="federation.linked", target_type="external_identity",
                       target_id=linked.id, details={"provider_id": str(provider.id), "how": how})
    return linked


def may_link_automatically(provider: IdentityProvider, identity: VerifiedIdentity, user: User) -> bool:
    """All must hold: the upstream proved the email, the provider is trusted for email, the account's email
    is verified; and the account is not a platform administrator's."""
    return identity.email_verified and provider.trust_email and user.email_verified and not user.is_platform_admin


def complete_sign_in(db: Session, *, actor: Actor, provider: IdentityProvider, identity: VerifiedIdentity,
                     settings: Settings, previous_session_id: uuid.UUID | None = None,
                     now: datetime | None = None) -> SignInOutcome:
    """Sign in the person the upstream vouched for (see the module docstring for the rules).

    Raises:
        FederationFailed: the account is suspended; no account and sign-up is not allowed (or no email);
            an organization's connection asserted an email outside the organization's verified domains.
    """
    now = now or utcnow()
    if provider.organization_id is not None:
        domains.require_assertable_email(db, provider=provider, email=identity.email)
    linked = db.scalar(select(ExternalIdentity).where(ExternalIdentity.provider_id == provider.id,
                                                      ExternalIdentity.subject == identity.subject))
    if linked is not None:
        linked.last_used_at = now
        return SignInOutcome(issued=_session_through(db, actor=actor, user=linked.user, provider=provider,
                                                     identity=identity, settings=settings,
                                                     previous_session_id=previous_session_id, now=now))
    existing = users.get_user_by_email(db, identity.email) if identity.email else None
    if existing is None:
        if not provider.allow_signup:
            raise errors.FederationFailed("signup_not_allowed", f"There is no account for you here, and "
                                                                f"{provider.name} may not create one.")
        if identity.email is None:
            raise errors.FederationFailed("no_email", f"{provider.name} did not share your email address.")
        user = users.create_user(db, email=identity.email, password=None, name=identity.name,
                                 bcrypt_rounds=settings.BCRYPT_ROUNDS)
        user.email_verified = identity.email_verified or provider.organization_id is not None
        audit.record_event(db, actor=actor.as_user(user), action="federation.signup", target_type="user",
                           target_id=user.id, details={"provider_id": str(provider.id)})
        _link(db, actor=actor, user=user, provider=provider, identity=identity, how="signup", now=now)
        return SignInOutcome(issued=_session_through(db, actor=actor, user=user, provider=provider, identity=identity,
                                                     settings=settings, previous_session_id=previous_session_id,
                                                     now=now))
    if may_link_automatically(provider, identity, existing):
        _link(db, actor=actor, user=existing, provider=provider, identity=identity, how="verified_email", now=now)
        return SignInOutcome(issued=_session_through(db, actor=actor, user=existing, provider=provider,
                                                     identity=identity, settings=settings,
                                                     previous_session_id=previous_session_id, now=now))
    # The pending link waits in the browser's session cookie: of the groups (Entra ID sends up to 200 ids)
    # it keeps only those the connection maps, the only ones the membership will look at.
    connection = provider.kind_settings
    mapped = (connection.group_role_map or {}) if isinstance(connection, MembershipSettings) else {}
    waiting = replace(identity, groups=[group for group in identity.groups if group in mapped])
    return SignInOutcome(pending_link=PendingLink(provider_id=provider.id, user_id=existing.id, identity=waiting,
                                                  expires_at=now + STATE_LIFETIME))


def link_with_password(db: Session, *, actor: Actor, pending: PendingLink, password: str, settings: Settings,
                       previous_session_id: uuid.UUID | None = None, now: datetime | None = None
                       ) -> sessions.IssuedSession:
    """Link the pending identity to its account once the person signed in to it with its password
    (authentication.login's checks, lockout and audit), and start a federated session.

    Raises:
        FederationFailed: the link expired, its provider is gone or disabled, or the identity was linked meanwhile.
        InvalidCredentials, AccountLocked, AccountSuspended: as authentication.login.
    """
    now = now or utcnow()
    provider = enabled_provider(db, pending.provider_id)
    user = db.get(User, pending.user_id)
    if pending.expires_at <= now or provider is None or user is None:
        raise errors.FederationFailed("link_expired", "This link request expired. Please sign in again.")
    taken = db.scalar(select(func.count()).select_from(ExternalIdentity).where(
        ExternalIdentity.provider_id == provider.id, ExternalIdentity.subject == pending.identity.subject))
    if taken:
        raise errors.FederationFailed("already_linked", "This identity is already linked to an account.")
    password_session = authentication.login(db, actor=actor, email=user.email, password=password, settings=settings,
                                            kind=SessionKind.BROWSER, previous_session_id=previous_session_id,
                                            now=now)
    _link(db, actor=actor, user=user, provider=provider, identity=pending.identity, how="reauthentication", now=now)
    # The password session proved the link; the browser's session is the federated one.
    return _session_through(db, actor=actor, user=user, provider=provider, identity=pending.identity,
                            settings=settings, previous_session_id=password_session.session.id, now=now)


# --- the person's own identities (API) ------------------------------------------------------------------


def list_identities(db: Session, *, user: User) -> list[ExternalIdentity]:
    return list(db.scalars(select(ExternalIdentity).where(ExternalIdentity.user_id == user.id)
                           .order_by(ExternalIdentity.created_at)))


def unlink_identity(db: Session, *, actor: Actor, user: User, identity_id: uuid.UUID) -> None:
    """Unlink one of `user`'s identities.

    Raises:
        NotFound: not one of theirs.
        Conflict: it is their last way to sign in (no password, no other identity).
    """
    identity = db.get(ExternalIdentity, identity_id)
    if identity is None or identity.user_id != user.id:
        raise errors.NotFound("No such linked identity.")
    others = db.scalar(select(func.count()).select_from(ExternalIdentity).where(
        ExternalIdentity.user_id == user.id, ExternalIdentity.id != identity.id))
    if user.password_hash is None and not others:
        raise errors.Conflict("This is your only way to sign in: set a password or link another identity first.")
    audit.record_event(db, actor=actor, action="federation.unlinked", target_type="external_identity",
                       target_id=identity.id, details={"provider_id": str(identity.provider_id)})
    db.delete(identity)
