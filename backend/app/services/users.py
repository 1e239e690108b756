"""User accounts: registration, profile, password changes, deletion."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.orm import Session

from app import errors
from app.config import Settings
from app.models import Membership, User, UserSession
from app.models.base import as_uuid, utcnow
from app.models.session import SessionEndReason
from app.security import passwords
from app.services import account_tokens, audit, grants, login_throttle, organizations, sessions
from app.services.actor import Actor
from app.stores.denylist import TokenDenylist


def normalize_email(email: str) -> str:
    """The stored form of an email: trimmed and lower-cased."""
    return email.strip().lower()


def get_user(db: Session, user_id: object) -> User | None:
    """The user with this id (a UUID or its string form), or None; malformed ids are None."""
    user_uuid = as_uuid(user_id)
    return db.get(User, user_uuid) if user_uuid else None


def active_user(user: User | None) -> User | None:
    """The user if they may still use or receive tokens (User.is_active), else None."""
    return user if user is not None and user.is_active else None


def get_user_by_email(db: Session, email: str) -> User | None:
    """The user with this email (any case), or None."""
    return db.scalar(select(User).where(User.email == normalize_email(email)))


def require_password_policy(password: str, *, field: str = "password") -> None:
    """Raises:
        ValidationFailed: the password is too short, too long for bcrypt or too common.
    """
    problems = passwords.password_problems(password)
    if problems:
        raise errors.ValidationFailed(details={field: problems})


def create_user(db: Session, *, email: str, password: str | None, name: str = "",
                bcrypt_rounds: int, is_platform_admin: bool = False) -> User:
    """Create an active user. `password=None` makes a federated-only account.

    Raises:
        ValidationFailed: the password breaks the policy.
        Conflict: the email is taken.
    """
    if password is not None:
        require_password_policy(password)
    require_email_free(db, email)
    user = User(
        email=normalize_email(email),
        name=name,
        password_hash=passwords.hash_password(password, bcrypt_rounds) if password is not None else None,
        is_platform_admin=is_platform_admin,
    )
    db.add(user)
    db.flush()  # assign user.id for the audit event
    return user


def matching(q: str) -> ColumnElement[bool]:
    """Accounts whose email or name holds `q`, case-insensitively; "%" and "_" typed in a search are
    literal characters, not LIKE wildcards."""
    return or_(User.email.icontains(q, autoescape=True), User.name.icontains(q, autoescape=True))


def require_email_free(db: Session, email: str, message: str = "An account with this email already exists.") -> None:
    """Raises:
        Conflict: an account has this address (`message`, the field named in details).
    """
    if get_user_by_email(db, email) is not None:
        raise errors.Conflict(message, details={"email": ["Already registered."]})


def register_user(db: Session, *, actor: Actor, email: str, password: str, name: str,
                  bcrypt_rounds: int) -> User:
    """Self-service registration.

    Raises:
        ValidationFailed, Conflict: as create_user.
    """
    user = create_user(db, email=email, password=password, name=name, bcrypt_rounds=bcrypt_rounds)
    audit.record_event(db, actor=actor.as_user(user), action="auth.register", target_type="user", target_id=user.id)
    return user


def update_profile(db: Session, *, actor: Actor, user: User, name: str | None = None) -> User:
    """Change the editable profile fields that were given."""
    if name is not None and name != user.name:
        user.name = name
        audit.record_event(db, actor=actor, action="user.updated", target_type="user", target_id=user.id,
                           details={"fields": ["name"]})
    return user


def require_current_password(db: Session, *, actor: Actor, user: User, password: str, settings: Settings,
                               now: datetime | None = None) -> None:
    """Check the signed-in user's password against the sign-in counters (services/login_throttle.py):
    a session, stolen perhaps, guesses its owner's password no faster than a sign-in form would, and
    its failures lock only its own address out. The caller commits after an error, to keep the count.

    Raises:
        AccountLocked, SignInThrottled: as for a sign-in.
        InvalidCredentials: the password is wrong.
    """
    now = now or utcnow()
    keys = login_throttle.keys_for(email=user.email, ip=actor.ip, settings=settings)
    matches = user.password_hash is not None and passwords.verify_password(password, user.password_hash)
    if refusal := login_throttle.refusal(db, keys=keys, now=now):
        raise refusal
    if not matches:
        locked = login_throttle.count_failure(db, keys=keys, settings=settings, now=now)
        raise locked or errors.InvalidCredentials("The current password is incorrect.")


def change_password(db: Session, *, actor: Actor, user: User, current_password: str, new_password: str,
                    settings: Settings) -> int:
    """Set a new password, end every other session of the user and kill their unused reset and
    email-change links.

    Returns the number of sessions ended.

    Raises:
        InvalidCredentials, AccountLocked, SignInThrottled: as require_current_password.
        ValidationFailed: the new password breaks the policy.
    """
    require_current_password(db, actor=actor, user=user, password=current_password, settings=settings)
    require_password_policy(new_password, field="new_password")
    user.password_hash = passwords.hash_password(new_password, settings.BCRYPT_ROUNDS)
    account_tokens.kill_links_after_password_change(db, user_id=user.id)
    ended = sessions.end_user_sessions(db, user_id=user.id, reason=SessionEndReason.PASSWORD_CHANGED,
                                       keep_session_id=actor.session_id)
    audit.record_event(db, actor=actor, action="user.password_changed", target_type="user", target_id=user.id,
                       details={"sessions_ended": ended})
    return ended


def delete_account(db: Session, *, actor: Actor, user: User, password: str, settings: Settings,
                   denylist: TokenDenylist) -> uuid.UUID:
    """Delete the user and their personal data; audit events stay, anonymised.

    The user leaves every organization: each records membership.removed, and the
    memberships go with the user (ON DELETE CASCADE).

    Raises:
        InvalidCredentials, AccountLocked, SignInThrottled: as require_current_password.
        Conflict: the user is the only owner of an organization; details list their slugs.
    """
    require_current_password(db, actor=actor, user=user, password=password, settings=settings)
    return remove_account(db, actor=actor, user=user, denylist=denylist)


def remove_account(db: Session, *, actor: Actor, user: User, denylist: TokenDenylist) -> uuid.UUID:
    """Delete the user as delete_account does, once whoever asked is entitled to (the user with
    their password, or a platform administrator). What the account was issued is revoked first, as a
    suspension revokes it: its refresh tokens go with it, and its live access tokens are denied until
    they expire (the rows that name them go with the account, so later nothing could find them).

    Raises:
        Conflict: the user is the only owner of an organization; details list their slugs.
    """
    user_id = user.id
    _leave_organizations(db, actor=actor, user_id=user_id)
    revoked = grants.revoke_user_grants(db, user_id=user_id, denylist=denylist)
    audit.record_event(db, actor=actor, action="user.deleted", target_type="user", target_id=user_id,
                       details={"refresh_tokens_revoked": revoked})
    db.flush()  # write the event before its actor reference is cleared
    audit.anonymise_actor(db, user_id=user_id)
    db.execute(delete(UserSession).where(UserSession.user_id == user_id))
    db.delete(user)
    return user_id


def _leave_organizations(db: Session, *, actor: Actor, user_id: uuid.UUID) -> None:
    """Record a departing user's exit from each of their organizations.

    Raises:
        Conflict: the user is the only owner of an organization, which would be left without one.
    """
    organization_ids = db.scalars(select(Membership.organization_id).where(Membership.user_id == user_id))
    # One at a time in a fixed order, so that two departing owners of the same organizations
    # cannot deadlock; under the locks, nobody else changes who owns them.
    for organization_id in sorted(organization_ids):
        organizations.lock_organization(db, organization_id)
    memberships = organizations.organizations_of(db, user_id=user_id)
    sole_owner_of = [m.organization.slug for m in memberships if organizations.is_last_owner(db, m)]
    if sole_owner_of:
        raise errors.Conflict("You are the only owner of these organizations: make someone else an owner, "
                              "or delete them, first.", details={"organizations": sole_owner_of})
    for membership in memberships:
        audit.record_event(db, actor=actor, action="membership.removed", organization_id=membership.organization_id,
                           target_type="user", target_id=user_id, details={"reason": "account_deleted"})
