"""Invitations: an emailed, single-use offer to join an organization with a role.

The token exists only in the email; the database keeps its SHA-256. Accepting claims the
invitation with one conditional UPDATE, so of two concurrent acceptances exactly one wins.
Who may do what in the organization is decided by services.organizations.require_access
before these functions run; they receive its `Access`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from app import errors
from app.config import Settings
from app.models import Invitation, InvitationStatus, Membership, Organization, Role, SessionKind, User
from app.models.base import utcnow
from app.security.tokens import hash_token, new_token
from app.services import audit, authentication, mail, sessions, users
from app.services.actor import Actor
from app.services.memberships import resolve_role
from app.services.organizations import (
    Access,
    invitation_ttl_hours,
    lock_access,
    lock_organization,
    require_in_organization,
    require_not_member,
    require_permission,
    require_role_within_reach,
)
from app.services.pagination import paginate

# The HTML page the emailed link opens (app/web/invitations.py serves it).
ACCEPT_PATH = "/invitations/accept"

# The status vocabulary is the model's: a status is not stored but read by invitation_status.
PENDING, ACCEPTED, REVOKED, EXPIRED = (InvitationStatus.PENDING, InvitationStatus.ACCEPTED, InvitationStatus.REVOKED,
                                       InvitationStatus.EXPIRED)


class AuditedRefusal(errors.AppError):
    """A refusal that may have written a failure audit event, before anything else changed:
    the caller commits (keeping that event, and nothing more) before answering. Some write
    none: a dead token only looked at (preview_invitation), a claim lost to a concurrent request."""


class InvitationUnusable(AuditedRefusal, errors.Conflict):
    """The token names an invitation that can no longer be accepted; `reason` (its status) says why."""

    MESSAGES = {
        EXPIRED: ("This invitation has expired; ask the organization for a new one.", "Expired."),
        REVOKED: ("This invitation has been revoked.", "Revoked."),
        ACCEPTED: ("This invitation has already been accepted.", "Already accepted."),
    }

    def __init__(self, reason: str) -> None:
        message, detail = self.MESSAGES[reason]
        super().__init__(message, details={"token": [detail]})
        self.reason = reason


class InvitationForAnotherEmail(AuditedRefusal, errors.PermissionDenied):
    message = "This invitation is for another email address."


@dataclass(frozen=True)
class InvitationPreview:
    """What the invitation page shows before anyone accepts."""

    invitation: Invitation
    # inviter_label of the person who invited.
    inviter: str
    # Whether an account with the invited email exists (sign in) or not (register).
    account_exists: bool
    # Whether the signed-in user, if any, is the one invited (and may accept).
    for_signed_in_user: bool = False


def is_invited(invitation: Invitation, user: User) -> bool:
    """Whether `user` is the person the invitation was sent to (their email, in any case)."""
    return users.normalize_email(user.email) == invitation.email


@dataclass(frozen=True)
class Joined:
    """A new account's membership, and the browser session that signs it in."""

    membership: Membership
    session: sessions.IssuedSession


@dataclass(frozen=True)
class InvitationDetails:
    """An invitation as the API shows it: with its status, decided here when it was read or changed."""

    invitation: Invitation
    # invitation_status at that moment (pending, accepted, revoked or expired).
    status: str


def invitation_status(invitation: Invitation, now: datetime | None = None) -> str:
    """pending, accepted, revoked or expired (an accepted invitation stays accepted after its expiry)."""
    if invitation.accepted_at is not None:
        return ACCEPTED
    if invitation.revoked_at is not None:
        return REVOKED
    if invitation.expires_at <= (now or utcnow()):
        return EXPIRED
    return PENDING


def _status_filter(status: str, now: datetime) -> list:
    open_ = [Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None)]
    return {
        PENDING: [*open_, Invitation.expires_at > now],
        EXPIRED: [*open_, Invitation.expires_at <= now],
        ACCEPTED: [Invitation.accepted_at.is_not(None)],
        REVOKED: [Invitation.accepted_at.is_(None), Invitation.revoked_at.is_not(None)],
    }[status]


def accept_url(issuer: str, token: str) -> str:
    return f"{issuer.rstrip('/')}{ACCEPT_PATH}?{urlencode({'token': token})}"


def _one_line(text: str) -> str:
    # Names go into the Subject header, where a line break would be header injection.
    return " ".join(text.split())


def inviter_label(inviter: User | None) -> str:
    """How the email and the invitation page name the person who invited."""
    if inviter is None:
        return "An administrator"
    return f"{inviter.name} ({inviter.email})" if inviter.name else inviter.email


def _invitation_message(*, invitation: Invitation, organization: Organization, role: Role, inviter: User | None,
                        link: str) -> mail.Message:
    body = (
        f"Hello,\n\n"
        f"{inviter_label(inviter)} invited you to join {organization.name} on Gatehouse with the role {role.name}.\n\n"
        f"To accept, open this link:\n{link}\n\n"
        f"The link works once and expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC.\n"
        f"If you did not expect this invitation, you can ignore this message.\n"
    )
    return mail.Message(to=invitation.email, subject=f"Invitation to join {_one_line(organization.name)} on Gatehouse",
                        body=body)


def invite_member(db: Session, *, actor: Actor, access: Access, email: str, role: str, issuer: str,
                  now: datetime | None = None) -> InvitationDetails:
    """Invite `email` into the organization with `role` (a role name or id of this organization),
    and email the link once the transaction commits.

    The invitation lives invitation_ttl_hours(organization); the link's token is only in the email.

    Raises:
        PermissionDenied: the caller lacks members:invite, or the role allows more than they may
            hand out (admins cannot invite owners).
        ValidationFailed: no such role in this organization.
        Conflict: the email belongs to a member, or has a pending invitation.
    """
    # Serialises with membership changes, and decides on the caller's role as it is now:
    # the checks below hold until the commit.
    access = lock_access(db, access)
    require_permission(access, "members:invite")
    now = now or utcnow()
    organization = access.organization
    email = users.normalize_email(email)
    role_row = resolve_role(db, organization_id=organization.id, role=role)
    require_role_within_reach(access, role_row)
    if (existing := users.get_user_by_email(db, email)) is not None:
        require_not_member(db, organization_id=organization.id, user_id=existing.id,
                           message="This person is already a member of the organization.")
    if db.scalar(select(func.count()).select_from(Invitation)
                 .where(Invitation.organization_id == organization.id, Invitation.email == email,
                        *_status_filter(PENDING, now))):
        raise errors.Conflict("This email already has a pending invitation; revoke it to send a new one.",
                              details={"email": ["Already invited."]})
    token = new_token()
    invitation = Invitation(organization_id=organization.id, email=email, role_id=role_row.id,
                            token_hash=hash_token(token), invited_by_user_id=actor.user.id if actor.user else None,
                            created_at=now, expires_at=now + timedelta(hours=invitation_ttl_hours(organization)))
    db.add(invitation)
    db.flush()  # assign invitation.id for the audit event
    audit.record_event(db, actor=actor, action="invitation.created", organization_id=organization.id,
                       target_type="invitation", target_id=invitation.id, details={"role": role_row.name})
    mail.queue(db, _invitation_message(invitation=invitation, organization=organization, role=role_row,
                                       inviter=actor.user, link=accept_url(issuer, token)))
    return InvitationDetails(invitation, PENDING)


def list_invitations(db: Session, *, organization_id: uuid.UUID, page: int, per_page: int,
                     status: str | None = None, now: datetime | None = None) -> tuple[list[InvitationDetails], int]:
    """One page of the organization's invitations with their status, newest first, and how many match.

    `status` keeps the invitations in that status; the filter and the statuses returned
    are decided at the same moment, `now`.
    """
    now = now or utcnow()
    where = [Invitation.organization_id == organization_id]
    if status is not None:
        where += _status_filter(status, now)
    items, total = paginate(db, select(Invitation).options(selectinload(Invitation.role)).where(*where)
                            .order_by(Invitation.created_at.desc(), Invitation.id), page=page, per_page=per_page)
    return [InvitationDetails(invitation, invitation_status(invitation, now)) for invitation in items], total


def require_invitation(db: Session, *, organization_id: uuid.UUID, invitation_id: object) -> Invitation:
    """The organization's invitation with this id (a UUID or its string).

    Raises:
        NotFound: no such invitation in this organization (another organization's, or a
            malformed id, is not found either).
    """
    return require_in_organization(db, Invitation, organization_id=organization_id, row_id=invitation_id,
                                   not_found="Invitation not found.")


def revoke_invitation(db: Session, *, actor: Actor, access: Access, invitation_id: object,
                      now: datetime | None = None) -> InvitationDetails:
    """Revoke an invitation: its link stops working. Revoking a revoked one changes nothing.

    Revoking needs the same reach as inviting with the invitation's role (admins cannot
    revoke an owner's invitation).

    Raises:
        PermissionDenied: the caller lacks members:invite, or the invitation's role is beyond their reach.
        NotFound: no such invitation in this organization.
        Conflict: it has been accepted (remove the member instead).
    """
    access = lock_access(db, access)
    require_permission(access, "members:invite")
    now = now or utcnow()
    invitation = require_invitation(db, organization_id=access.organization.id, invitation_id=invitation_id)
    require_role_within_reach(access, invitation.role)
    # Conditional, so that a concurrent acceptance and this revocation cannot both succeed.
    revoked = db.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    db.refresh(invitation)
    if revoked.rowcount != 1:
        if invitation.accepted_at is not None:
            raise errors.Conflict("This invitation has already been accepted; remove the member instead.")
        return InvitationDetails(invitation, invitation_status(invitation, now))
    audit.record_event(db, actor=actor, action="invitation.revoked", organization_id=invitation.organization_id,
                       target_type="invitation", target_id=invitation.id, details={"role": invitation.role.name})
    return InvitationDetails(invitation, REVOKED)


def _find_by_token(db: Session, token: str) -> Invitation | None:
    return db.scalar(select(Invitation).where(Invitation.token_hash == hash_token(token)))


def preview_invitation(db: Session, *, token: str, user: User | None = None,
                       now: datetime | None = None) -> InvitationPreview:
    """The pending invitation behind an emailed token, for the page that offers to accept it
    to `user`, the browser's signed-in user if any.

    Raises:
        NotFound: no invitation has this token.
        InvitationUnusable: it has expired, been revoked or been accepted.
    """
    invitation = _find_by_token(db, token)
    if invitation is None:
        raise errors.NotFound("This invitation link is not valid.")
    status = invitation_status(invitation, now)
    if status != PENDING:
        raise InvitationUnusable(status)
    return InvitationPreview(invitation, inviter=inviter_label(invitation.invited_by),
                             account_exists=users.get_user_by_email(db, invitation.email) is not None,
                             for_signed_in_user=user is not None and is_invited(invitation, user))


def _refuse(db: Session, *, actor: Actor, invitation: Invitation, reason: str) -> None:
    audit.record_event(db, actor=actor, action="invitation.accepted", result="failure",
                       organization_id=invitation.organization_id, target_type="invitation",
                       target_id=invitation.id, details={"reason": reason})


def _usable_invitation(db: Session, *, actor: Actor, token: str, now: datetime) -> Invitation:
    invitation = _find_by_token(db, token)
    if invitation is None:
        raise errors.NotFound("This invitation link is not valid.")
    status = invitation_status(invitation, now)
    if status != PENDING:
        _refuse(db, actor=actor, invitation=invitation, reason=status)
        raise InvitationUnusable(status)
    return invitation


def _claim(db: Session, *, invitation: Invitation, now: datetime) -> None:
    """Mark the invitation accepted, unless a concurrent request accepted or revoked it first (or it expired).

    Raises:
        InvitationUnusable: another request won, or the invitation is no longer pending.
    """
    claimed = db.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None),
               Invitation.expires_at > now)
        .values(accepted_at=now)
        .execution_options(synchronize_session=False)
    )
    db.refresh(invitation)
    if claimed.rowcount != 1:
        raise InvitationUnusable(invitation_status(invitation, now))


def _join(db: Session, *, actor: Actor, invitation: Invitation, user: User) -> Membership:
    """Make the claimed invitation's user a member; possession of the emailed token proves the mailbox."""
    invitation.accepted_by_user_id = user.id
    user.email_verified = True
    membership = Membership(organization_id=invitation.organization_id, user_id=user.id, role_id=invitation.role_id)
    db.add(membership)
    db.flush()  # fill membership.id and created_at for the caller
    details = {"role": invitation.role.name}
    audit.record_event(db, actor=actor.as_user(user), action="invitation.accepted",
                       organization_id=invitation.organization_id, target_type="invitation",
                       target_id=invitation.id, details=details)
    audit.record_event(db, actor=actor.as_user(user), action="membership.added",
                       organization_id=invitation.organization_id, target_type="user", target_id=user.id,
                       details={**details, "via": "invitation"})
    return membership


def accept_invitation(db: Session, *, actor: Actor, user: User, token: str,
                      now: datetime | None = None) -> Membership:
    """Accept an invitation as the signed-in `user`, whose email must be the invited one (any case).

    Holding the emailed token proves the user receives mail at that address, so their
    email becomes verified. An InvitationUnusable or InvitationForAnotherEmail refusal is
    raised before anything but its failure audit event is written: the caller may commit
    that event.

    Raises:
        NotFound: no invitation has this token.
        InvitationUnusable (Conflict): expired, revoked or already accepted (`details.token` says which).
        InvitationForAnotherEmail (PermissionDenied): the invitation is for another email address.
        Conflict: the user is already a member of the organization.
    """
    now = now or utcnow()
    invitation = _usable_invitation(db, actor=actor, token=token, now=now)
    if not is_invited(invitation, user):
        _refuse(db, actor=actor.as_user(user), invitation=invitation, reason="email_mismatch")
        raise InvitationForAnotherEmail()
    lock_organization(db, invitation.organization_id)  # as every membership change (services.memberships)
    require_not_member(db, organization_id=invitation.organization_id, user_id=user.id,
                       message="You are already a member of this organization.")
    _claim(db, invitation=invitation, now=now)
    return _join(db, actor=actor, invitation=invitation, user=user)


def register_and_accept(db: Session, *, actor: Actor, token: str, name: str, password: str | None,
                        bcrypt_rounds: int, now: datetime | None = None) -> Membership:
    """Create an account for the invited email (verified, as holding the token proves the mailbox)
    and accept the invitation with it.

    An InvitationUnusable refusal is raised before anything but its failure audit event is
    written: the caller may commit that event.

    Raises:
        NotFound: no invitation has this token.
        InvitationUnusable (Conflict): expired, revoked or already accepted (`details.token` says which).
        Conflict: an account with the invited email exists (sign in, then accept).
        ValidationFailed: no password, or one that breaks the password policy.
    """
    now = now or utcnow()
    invitation = _usable_invitation(db, actor=actor, token=token, now=now)
    if users.get_user_by_email(db, invitation.email) is not None:
        raise errors.Conflict("An account with this email already exists; sign in, then accept the invitation.",
                              details={"email": ["Already registered; sign in first."]})
    if password is None:
        raise errors.ValidationFailed(details={"password": ["Required to create an account; or sign in first."]})
    users.require_password_policy(password)
    lock_organization(db, invitation.organization_id)  # as every membership change (services.memberships)
    _claim(db, invitation=invitation, now=now)
    user = users.register_user(db, actor=actor, email=invitation.email, password=password, name=name,
                               bcrypt_rounds=bcrypt_rounds)
    return _join(db, actor=actor, invitation=invitation, user=user)


def register_accept_and_sign_in(db: Session, *, actor: Actor, token: str, name: str, password: str | None,
                                settings: Settings, previous_session_id: uuid.UUID | None = None,
                                now: datetime | None = None) -> Joined:
    """register_and_accept, then sign the new account in with a browser session (the invitation page).

    The browser's previous session (someone else's account), if any, ends: one browser,
    one signed-in user.

    Raises:
        As register_and_accept.
    """
    membership = register_and_accept(db, actor=actor, token=token, name=name, password=password,
                                     bcrypt_rounds=settings.BCRYPT_ROUNDS, now=now)
    issued = authentication.sign_in(db, actor=actor, user=membership.user, settings=settings,
                                    kind=SessionKind.BROWSER, previous_session_id=previous_session_id,
                                    details={"method": "invitation"}, now=now)
    return Joined(membership, issued)


def accept_or_register(db: Session, *, actor: Actor, user: User | None, token: str, name: str | None = None,
                       password: str | None = None, bcrypt_rounds: int, now: datetime | None = None) -> Membership:
    """Accept as the signed-in `user` (who sends only the token), or, with nobody signed in,
    register the invited email with `name` and `password` and accept.

    Raises:
        ValidationFailed: a signed-in user sent a name or password; or as register_and_accept.
        NotFound, InvitationUnusable, InvitationForAnotherEmail, Conflict: as accept_invitation
            and register_and_accept.
    """
    if user is None:
        return register_and_accept(db, actor=actor, token=token, name=name or "", password=password,
                                   bcrypt_rounds=bcrypt_rounds, now=now)
    extra = {field: ["Not used when signed in: send only the token."]
             for field, value in (("name", name), ("password", password)) if value is not None}
    if extra:
        raise errors.ValidationFailed(details=extra)
    return accept_invitation(db, actor=actor, user=user, token=token, now=now)
