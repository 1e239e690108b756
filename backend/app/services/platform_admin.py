"""Platform administration of accounts: find, create, inspect, change, suspend, unlock, send a
reset link, delete.

For platform administrators (the API checks who may call) and the operator at the command line.
Every change is audited with the administrator as actor and the account as target. Two rules keep
the platform administrable: an administrator cannot suspend, demote or delete themselves, and
nobody can suspend, demote or delete the last active platform administrator.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import errors
from app.config import Settings
from app.models import ApiKey, AuditEvent, ExternalIdentity, Membership, SessionEndReason, User, UserSession, UserStatus
from app.services import account_tokens, api_keys, audit, grants, identities, login_throttle, organizations, sessions, users
from app.services.actor import Actor
from app.stores.denylist import TokenDenylist
from app.services.pagination import paginate


@dataclass(frozen=True)
class AccountOverview:
    """What an administrator sees of one account."""

    user: User
    memberships: list[Membership]
    live_sessions: list[UserSession]
    identities: list[ExternalIdentity]
    api_keys: list[ApiKey]


@dataclass(frozen=True)
class Suspension:
    """What suspending an account ended."""

    user: User
    sessions_ended: int
    refresh_tokens_revoked: int
    api_keys_revoked: int


def list_users(db: Session, *, q: str | None = None, status: str | None = None, page: int,
               per_page: int) -> tuple[list[User], int]:
    """One page of accounts, newest first, and how many match: `q` is a case-insensitive substring of
    the email or the name, `status` the account's status."""
    conditions = []
    if q:
        conditions.append(users.matching(q))
    if status is not None:
        conditions.append(User.status == status)
    return paginate(db, select(User).where(*conditions).order_by(User.created_at.desc(), User.id.desc()),
                    page=page, per_page=per_page)


def require_user(db: Session, user_id: object) -> User:
    """Raises:
        NotFound: no account has this id.
    """
    user = users.get_user(db, user_id)
    if user is None:
        raise errors.NotFound("User not found.")
    return user


def find_user_by_email(db: Session, email: str) -> User:
    """The account with this email (any case), for the command line.

    Raises:
        NotFound: no account has it.
    """
    user = users.get_user_by_email(db, email)
    if user is None:
        raise errors.NotFound("No account has this email.")
    return user


def overview(db: Session, *, user_id: object) -> AccountOverview:
    """The account with its organizations, live sessions and linked identities.

    Raises:
        NotFound: no account has this id.
    """
    user = require_user(db, user_id)
    return AccountOverview(user=user, memberships=organizations.organizations_of(db, user_id=user.id),
                           live_sessions=sessions.list_live_sessions(db, user_id=user.id),
                           identities=identities.list_identities(db, user=user),
                           api_keys=api_keys.list_keys(db, user=user))


def create_user(db: Session, *, actor: Actor, email: str, name: str = "", is_platform_admin: bool = False,
                email_verified: bool = False, settings: Settings) -> User:
    """Create an account without a password and email its owner a reset link to choose one: an
    administrator never sets or learns a password.

    Raises:
        Conflict: the email is taken.
    """
    user = users.create_user(db, email=email, password=None, name=name, bcrypt_rounds=settings.BCRYPT_ROUNDS,
                             is_platform_admin=is_platform_admin)
    user.email_verified = email_verified
    account_tokens.send_reset_link(db, user=user, settings=settings)
    audit.record_event(db, actor=actor, action="user.created", target_type="user", target_id=user.id,
                       details={"is_platform_admin": is_platform_admin, "email_verified": email_verified})
    return user


def update_user(db: Session, *, actor: Actor, user_id: object, name: str | None = None,
                is_platform_admin: bool | None = None, email_verified: bool | None = None) -> User:
    """Change the fields that were given; audits which changed.

    Raises:
        NotFound: no account has this id.
        Conflict: an administrator demoting themselves, or the last active platform administrator.
    """
    user = require_user(db, user_id)
    if is_platform_admin is False and user.is_platform_admin:
        _require_not_self(actor, user, "remove your own platform administration")
        _require_another_admin(db, user)
    changes = {"name": name, "is_platform_admin": is_platform_admin, "email_verified": email_verified}
    changed = sorted(field for field, value in changes.items() if value is not None and getattr(user, field) != value)
    for field in changed:
        setattr(user, field, changes[field])
    if changed:
        audit.record_event(db, actor=actor, action="user.updated", target_type="user", target_id=user.id,
                           details={"fields": changed})
    return user


def suspend_user(db: Session, *, actor: Actor, user_id: object, denylist: TokenDenylist) -> Suspension:
    """Suspend the account and end, at once and in this transaction, everything it holds: every
    session, every refresh-token family, and the live access tokens issued with them or from codes
    (denied until they expire, so introspection says active=false and UserInfo refuses them).

    Raises:
        NotFound: no account has this id.
        Conflict: already suspended; an administrator suspending themselves; the last active
            platform administrator.
    """
    user = require_user(db, user_id)
    _require_not_self(actor, user, "suspend your own account")
    if not user.is_active:
        raise errors.Conflict("The account is already suspended.")
    _require_another_admin(db, user)
    user.status = UserStatus.SUSPENDED
    ended = sessions.end_user_sessions(db, user_id=user.id, reason=SessionEndReason.SUSPENDED)
    revoked = grants.revoke_user_grants(db, user_id=user.id, denylist=denylist)
    keys_revoked = api_keys.revoke_all_for_user(db, actor=actor, user_id=user.id)
    audit.record_event(db, actor=actor, action="user.suspended", target_type="user", target_id=user.id,
                       details={"sessions_ended": ended, "refresh_tokens_revoked": revoked,
                                "api_keys_revoked": keys_revoked})
    return Suspension(user=user, sessions_ended=ended, refresh_tokens_revoked=revoked, api_keys_revoked=keys_revoked)


def unsuspend_user(db: Session, *, actor: Actor, user_id: object) -> User:
    """Make a suspended account active again. What the suspension ended stays ended.

    Raises:
        NotFound: no account has this id.
        Conflict: the account is not suspended.
    """
    user = require_user(db, user_id)
    if user.is_active:
        raise errors.Conflict("The account is not suspended.")
    user.status = UserStatus.ACTIVE
    audit.record_event(db, actor=actor, action="user.unsuspended", target_type="user", target_id=user.id)
    return user


def unlock_user(db: Session, *, actor: Actor, user_id: object, settings: Settings) -> int:
    """Lift the sign-in locks on the account's email, from every address, and forget its failures
    (services/login_throttle.py). Returns how many counters went.

    Raises:
        NotFound: no account has this id.
    """
    user = require_user(db, user_id)
    cleared = login_throttle.clear_account(db, email=user.email, settings=settings)
    audit.record_event(db, actor=actor, action="user.unlocked", target_type="user", target_id=user.id,
                       details={"counters_cleared": cleared})
    return cleared


def send_password_reset(db: Session, *, actor: Actor, user_id: object, settings: Settings) -> User:
    """Email the account's owner a password-reset link, as /password/forgot does; its token goes to
    the owner's address only.

    Raises:
        NotFound: no account has this id.
        Conflict: the account is suspended (a reset link would not work).
    """
    user = require_user(db, user_id)
    if not user.is_active:
        raise errors.Conflict("The account is suspended: unsuspend it first.")
    account_tokens.send_reset_link(db, user=user, settings=settings)
    audit.record_event(db, actor=actor, action="user.password_reset_sent", target_type="user", target_id=user.id)
    return user


def delete_user(db: Session, *, actor: Actor, user_id: object, denylist: TokenDenylist) -> uuid.UUID:
    """Delete the account as self-deletion does (services.users.remove_account).

    Raises:
        NotFound: no account has this id.
        Conflict: an administrator deleting themselves; the last active platform administrator;
            the only owner of an organization (details list their slugs).
    """
    user = require_user(db, user_id)
    _require_not_self(actor, user, "delete your own account here; use DELETE /api/v1/users/me")
    _require_another_admin(db, user)
    return users.remove_account(db, actor=actor, user=user, denylist=denylist)


def _require_not_self(actor: Actor, user: User, what: str) -> None:
    if actor.user is not None and actor.user.id == user.id:
        raise errors.Conflict(f"You cannot {what}.")


def _require_another_admin(db: Session, user: User) -> None:
    """Raises:
        Conflict: `user` is the only active platform administrator.
    """
    if not (user.is_platform_admin and user.is_active):
        return
    # Locked, so that two administrators removing each other at once cannot both succeed (PostgreSQL
    # re-reads the rows after the wait; SQLite runs one writer at a time).
    admins = db.scalars(select(User.id).where(User.is_platform_admin.is_(True), User.status == UserStatus.ACTIVE)
                        .with_for_update())
    if set(admins) <= {user.id}:
        raise errors.Conflict("This is the last active platform administrator: make another one first.")


def login_history(db: Session, *, user_id: object, page: int, per_page: int) -> tuple[list[AuditEvent], int]:
    """One page of the account's sign-ins and failed attempts, newest first (audit.list_sign_ins).

    Raises:
        NotFound: no account has this id.
    """
    return audit.list_sign_ins(db, user_id=require_user(db, user_id).id, page=page, per_page=per_page)
