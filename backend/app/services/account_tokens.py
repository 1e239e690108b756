"""Emailed one-time links that act on an account: password reset, email verification and email
change, and the self-service sign-up that sends the first verification link.

A link carries only its token; the database keeps the token's SHA-256 (AccountToken). Using a
link claims its row with one conditional UPDATE, so of two concurrent uses exactly one wins.
Issuing a link kills the earlier unused ones of the same purpose, a password change or reset
kills every unused reset and email-change link, and an email change kills every unused link.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlencode

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import errors
from app.config import Settings
from app.models import AccountToken, AccountTokenPurpose, SessionEndReason, User
from app.models.base import utcnow
from app.security import passwords
from app.security.tokens import hash_token, new_token
from app.services import audit, domains, grants, mail, sessions, users
from app.services.actor import Actor
from app.stores.denylist import TokenDenylist

# The HTML pages the emails link to (app/web/accounts.py serves them).
RESET_PATH = "/password/reset"
VERIFY_PATH = "/email/verify"


class LinkUnusable(errors.NotFound):
    """The token names no link that works now: unknown, expired, already used or superseded.
    The answer does not say which (it would tell an unused link from a never-issued one)."""

    message = "This link is invalid, has expired or has already been used; ask for a new one."

    def __init__(self) -> None:
        super().__init__(details={"token": ["Invalid, expired or already used."]})


def link_url(issuer: str, path: str, token: str) -> str:
    return f"{issuer.rstrip('/')}{path}?{urlencode({'token': token})}"


def _kill_links(db: Session, *, user_id, purposes: Collection[AccountTokenPurpose], now: datetime) -> None:
    """Mark every unused link of these purposes used: none of them works any more."""
    db.execute(update(AccountToken)
               .where(AccountToken.user_id == user_id, AccountToken.purpose.in_(purposes),
                      AccountToken.used_at.is_(None))
               .values(used_at=now)
               .execution_options(synchronize_session=False))


def _issue_link(db: Session, *, user: User, purpose: AccountTokenPurpose, lifetime: timedelta,
                now: datetime, email: str | None = None) -> str:
    """A new link token for `user`, sent to `email` (by default the account's), the earlier ones
    of this purpose killed; returns the token."""
    _kill_links(db, user_id=user.id, purposes=[purpose], now=now)
    token = new_token()
    db.add(AccountToken(user_id=user.id, purpose=purpose, token_hash=hash_token(token), email=email or user.email,
                        created_at=now, expires_at=now + lifetime))
    return token


def _live_link(purposes: Collection[AccountTokenPurpose], token: str, now: datetime) -> list:
    return [AccountToken.token_hash == hash_token(token), AccountToken.purpose.in_(purposes),
            AccountToken.used_at.is_(None), AccountToken.expires_at > now]


def find_live_link(db: Session, *, purpose: AccountTokenPurpose, token: str,
                   now: datetime | None = None) -> AccountToken | None:
    """The unused, unexpired link with this token, or None. Looks only: nothing is claimed."""
    return db.scalar(select(AccountToken).where(*_live_link([purpose], token, now or utcnow())))


def _claim_link(db: Session, *, purposes: Collection[AccountTokenPurpose], token: str,
                now: datetime) -> AccountToken:
    """Use the link, of one of these purposes: one conditional UPDATE, so two concurrent uses
    cannot both win.

    Raises:
        LinkUnusable: no such link, or expired, used or superseded (by a concurrent use too).
    """
    claimed = db.execute(update(AccountToken).where(*_live_link(purposes, token, now)).values(used_at=now)
                         .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        raise LinkUnusable()
    return db.scalars(select(AccountToken).where(AccountToken.token_hash == hash_token(token))
                      .execution_options(populate_existing=True)).one()


def kill_links_after_password_change(db: Session, *, user_id, now: datetime | None = None) -> None:
    """A password change: the reset links sent before it stop working, and so do pending email
    changes (one asked for with a stolen session must not outlive the owner's new password)."""
    _kill_links(db, user_id=user_id, purposes=[AccountTokenPurpose.PASSWORD_RESET, AccountTokenPurpose.EMAIL_CHANGE],
                now=now or utcnow())


# --- Password reset ---


def _reset_message(*, user: User, link: str, expires_at: datetime) -> mail.Message:
    body = (
        f"Hello,\n\n"
        f"Someone, probably you, asked to reset the password of your Gatehouse account ({user.email}).\n\n"
        f"To choose a new password, open this link:\n{link}\n\n"
        f"The link works once and expires at {expires_at:%Y-%m-%d %H:%M} UTC. Setting a new password signs "
        f"you out everywhere.\n"
        f"If you did not ask for this, ignore this message: your password stays as it is.\n"
    )
    return mail.Message(to=user.email, subject="Reset your Gatehouse password", body=body)


def request_password_reset(db: Session, *, actor: Actor, email: str, settings: Settings,
                           now: datetime | None = None) -> None:
    """Email a reset link to `email` if an active account has it; otherwise do nothing visible.

    The caller answers the same either way, and sends the mail after the commit, so the request
    itself does the same work (a lookup and an insert or not) whether or not the account exists.
    An account without a password (federated only) gets a link too: that is how it sets one.
    """
    now = now or utcnow()
    user = users.get_user_by_email(db, email)
    if user is None or not user.is_active:
        audit.record_event(db, actor=actor, action="auth.password_reset_requested", result="failure",
                           details={"reason": "unknown_email" if user is None else "suspended"})
        return
    send_reset_link(db, user=user, settings=settings, now=now)
    audit.record_event(db, actor=actor.as_user(user), action="auth.password_reset_requested",
                       target_type="user", target_id=user.id)


def _mail_link(db: Session, *, user: User, purpose: AccountTokenPurpose, seconds: int, issuer: str, path: str,
               message: Callable[..., mail.Message], now: datetime | None, email: str | None = None) -> None:
    """Issue a `purpose` link of `user` to `path`, sent to `email` (by default the account's), good for
    `seconds` (earlier unused ones die), and queue `message` carrying it."""
    now = now or utcnow()
    lifetime = timedelta(seconds=seconds)
    token = _issue_link(db, user=user, purpose=purpose, lifetime=lifetime, now=now, email=email)
    mail.queue(db, message(user=user, link=link_url(issuer, path, token), expires_at=now + lifetime))


def send_reset_link(db: Session, *, user: User, settings: Settings, now: datetime | None = None) -> None:
    """Email `user` a password-reset link (earlier unused ones die); nobody else ever sees its token."""
    _mail_link(db, user=user, purpose=AccountTokenPurpose.PASSWORD_RESET, seconds=settings.PASSWORD_RESET_TTL_SECONDS,
               issuer=settings.ISSUER, path=RESET_PATH, message=_reset_message, now=now)


def reset_password(db: Session, *, actor: Actor, token: str, new_password: str, settings: Settings,
                   denylist: TokenDenylist, now: datetime | None = None) -> User:
    """Set a new password through a reset link, and end everything the old one may have opened:
    every session, every refresh-token family (with their live access tokens), the other
    reset links and any pending email change. Signs nothing in. The link proves the address, so it counts as verified.

    Raises:
        ValidationFailed: the password breaks the policy (the link stays usable).
        LinkUnusable: the link is unknown, expired, used or superseded.
        AccountSuspended: the account was suspended after the link was sent.
    """
    now = now or utcnow()
    users.require_password_policy(new_password)
    link = _claim_link(db, purposes=[AccountTokenPurpose.PASSWORD_RESET], token=token, now=now)
    user = link.user
    if not user.is_active:
        raise errors.AccountSuspended()
    user.password_hash = passwords.hash_password(new_password, settings.BCRYPT_ROUNDS)
    if link.email == user.email:
        user.email_verified = True
    kill_links_after_password_change(db, user_id=user.id, now=now)
    ended = sessions.end_user_sessions(db, user_id=user.id, reason=SessionEndReason.PASSWORD_CHANGED)
    revoked = grants.revoke_user_grants(db, user_id=user.id, denylist=denylist, now=now)
    audit.record_event(db, actor=actor.as_user(user), action="user.password_reset", target_type="user",
                       target_id=user.id, details={"sessions_ended": ended, "refresh_tokens_revoked": revoked})
    return user


# --- Sign-up and email verification ---


def _verification_message(*, user: User, link: str, expires_at: datetime) -> mail.Message:
    body = (
        f"Hello,\n\n"
        f"Please confirm that {user.email} is the address of your Gatehouse account by opening this link:\n"
        f"{link}\n\n"
        f"The link works once and expires at {expires_at:%Y-%m-%d %H:%M} UTC.\n"
        f"If you did not create this account, you can ignore this message.\n"
    )
    return mail.Message(to=user.email, subject="Confirm your email address for Gatehouse", body=body)


def send_verification(db: Session, *, user: User, settings: Settings, now: datetime | None = None) -> None:
    """Email `user` a link that verifies their address (earlier unused ones die)."""
    _mail_link(db, user=user, purpose=AccountTokenPurpose.EMAIL_VERIFICATION,
               seconds=settings.EMAIL_VERIFICATION_TTL_SECONDS, issuer=settings.ISSUER, path=VERIFY_PATH,
               message=_verification_message, now=now)


def sign_up(db: Session, *, actor: Actor, email: str, password: str, name: str, settings: Settings) -> User:
    """Self-service registration: create the account and email it a verification link.

    Raises:
        RegistrationClosed: REGISTRATION_OPEN is false.
        SSORequired: the email's domain enforces single sign-on (domains.sign_in_refusal).
        ValidationFailed, Conflict: as users.create_user.
    """
    if not settings.REGISTRATION_OPEN:
        raise errors.RegistrationClosed()
    if sso_required := domains.sign_in_refusal(db, email=email, user=None):
        raise sso_required
    user = users.register_user(db, actor=actor, email=email, password=password, name=name,
                               bcrypt_rounds=settings.BCRYPT_ROUNDS)
    send_verification(db, user=user, settings=settings)
    return user


def resend_verification(db: Session, *, actor: Actor, email: str, settings: Settings) -> None:
    """Send a new verification link if an active account with an unverified address has `email`;
    otherwise nothing. The caller answers the same either way."""
    user = users.get_user_by_email(db, email)
    if user is None or not user.is_active or user.email_verified:
        return
    send_verification(db, user=user, settings=settings)
    audit.record_event(db, actor=actor.as_user(user), action="auth.email_verification_sent", target_type="user",
                       target_id=user.id)


def verify_email(db: Session, *, actor: Actor, token: str, now: datetime | None = None) -> User:
    """Confirm the address an emailed link went to: a verification link marks the account's
    address verified; an email-change link makes its address the account's (_change_email).

    Raises:
        LinkUnusable: the link is unknown, expired, used or superseded, or (a verification link)
            the account's address changed since it was sent.
        AccountSuspended, Conflict: as _change_email.
    """
    now = now or utcnow()
    link = _claim_link(db, purposes=[AccountTokenPurpose.EMAIL_VERIFICATION, AccountTokenPurpose.EMAIL_CHANGE],
                       token=token, now=now)
    if link.purpose == AccountTokenPurpose.EMAIL_CHANGE:
        return _change_email(db, actor=actor, link=link, now=now)
    user = link.user
    if link.email != user.email:
        raise LinkUnusable()
    user.email_verified = True
    audit.record_event(db, actor=actor.as_user(user), action="user.email_verified", target_type="user",
                       target_id=user.id)
    return user


# --- Email change ---


def _email_change_message(*, user: User, new_email: str, link: str, expires_at: datetime) -> mail.Message:
    body = (
        f"Hello,\n\n"
        f"Someone, probably you, asked to make {new_email} the address of the Gatehouse account {user.email}.\n\n"
        f"To confirm it, open this link:\n{link}\n\n"
        f"The link works once and expires at {expires_at:%Y-%m-%d %H:%M} UTC. Until it is opened, nothing changes.\n"
        f"If you did not ask for this, ignore this message.\n"
    )
    return mail.Message(to=new_email, subject="Confirm your new email address for Gatehouse", body=body)


def _email_changed_notice(*, old_email: str, new_email: str) -> mail.Message:
    body = (
        f"Hello,\n\n"
        f"The address of your Gatehouse account is now {new_email}, no longer {old_email}: the change was "
        f"confirmed through a link sent to the new address. Sign in with the new address from now on.\n\n"
        f"If you did not ask for this, someone else may control your account: contact your administrator.\n"
    )
    return mail.Message(to=old_email, subject="The email address of your Gatehouse account changed", body=body)


def request_email_change(db: Session, *, actor: Actor, user: User, email: str, settings: Settings,
                         now: datetime | None = None) -> None:
    """Email `email` a link that, once opened, makes it the account's address (verify_email);
    until then nothing changes. An earlier pending change dies.

    Raises:
        ValidationFailed: `email` is already the account's address.
        Conflict: another account has it.
    """
    new_email = users.normalize_email(email)
    if new_email == user.email:
        raise errors.ValidationFailed(details={"email": ["This is already your address."]})
    users.require_email_free(db, new_email)
    _mail_link(db, user=user, purpose=AccountTokenPurpose.EMAIL_CHANGE, seconds=settings.EMAIL_VERIFICATION_TTL_SECONDS,
               issuer=settings.ISSUER, path=VERIFY_PATH, message=partial(_email_change_message, new_email=new_email),
               now=now, email=new_email)
    audit.record_event(db, actor=actor, action="user.email_change_requested", target_type="user", target_id=user.id)


TAKEN_MEANWHILE = "Another account has this email now."


def _change_email(db: Session, *, actor: Actor, link: AccountToken, now: datetime) -> User:
    """Make the address an email-change link went to the account's, verified (the link proved it).
    Every other unused link of the account dies (they went to, or prove, the old address), and
    the old address gets a notice.

    Raises:
        AccountSuspended: the account was suspended after the link was sent.
        Conflict: another account took the address meanwhile.
    """
    user = link.user
    if not user.is_active:
        raise errors.AccountSuspended()
    users.require_email_free(db, link.email, TAKEN_MEANWHILE)
    old_email = user.email
    try:
        with db.begin_nested():  # another account may take it between the check and the write
            user.email, user.email_verified = link.email, True
    except IntegrityError:
        raise errors.Conflict(TAKEN_MEANWHILE, details={"email": ["Already registered."]}) from None
    _kill_links(db, user_id=user.id, purposes=list(AccountTokenPurpose), now=now)
    mail.queue(db, _email_changed_notice(old_email=old_email, new_email=user.email))
    audit.record_event(db, actor=actor.as_user(user), action="user.email_changed", target_type="user",
                       target_id=user.id)
    return user
