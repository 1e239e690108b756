"""Failed sign-ins, counted so that they neither tell whether an account exists nor lock its owner out.

Two counters per email typed at sign-in, whether or not an account has it (counting only accounts
would make the lock itself say which emails exist):

- per (email, source address): LOGIN_MAX_FAILURES failures within LOGIN_LOCKOUT_SECONDS lock that
  address out of that email for LOGIN_LOCKOUT_SECONDS (423). Other addresses are not affected, so
  an attacker's failures cannot keep the owner out. IPv6 addresses count by /64, the smallest
  allocation one subscriber gets, so that one machine cannot take a fresh address per guess.
- per email, from every address together: beyond LOGIN_ACCOUNT_THROTTLE_FAILURES failures within
  LOGIN_LOCKOUT_SECONDS, one attempt per LOGIN_ACCOUNT_THROTTLE_SECONDS is checked and the others
  are refused with 429 until the window ends: many addresses together guess at a bounded rate, and
  the owner waits seconds, not half an hour.

The counters live in the database, beside the audit events they go with: sign-in needs the
database anyway, every instance sees the same counts, and neither a Redis outage (rate limits then
fall back to each process) nor an emptied Redis resets a lock. Rows are keyed by an HMAC of the
email under SECRET_KEY (changing it starts every count afresh), so the table holds no email.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app import errors
from app.config import Settings
from app.models import LoginThrottle
from app.models.base import utcnow


@dataclass(frozen=True)
class Keys:
    """The two counters a sign-in attempt touches."""
    source: str
    account: str


def source_of(ip: str | None) -> str:
    """The address failures are counted for: an IPv4 address, or an IPv6 address's /64."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return ip or ""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def keys_for(*, email: str, ip: str | None, settings: Settings) -> Keys:
    """The counters of `email` (as stored: normalised) tried from `ip`."""
    def digest(*parts: str) -> str:
        return hmac.new(settings.SECRET_KEY.encode(), "\0".join(parts).encode(), hashlib.sha256).hexdigest()
    return Keys(source=digest("source", email, source_of(ip)), account=digest("account", email))


def _retry_after(until: datetime, now: datetime) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil((until - now).total_seconds())))}


def refusal(db: Session, *, keys: Keys, now: datetime) -> errors.AppError | None:
    """Why an attempt with these counters is not checked now, or None when it is.

    AccountLocked: this address failed too often for this email.
    SignInThrottled: this email failed too often from everywhere; Retry-After says when the next
    attempt is checked.
    """
    rows = {row.key: row for row in db.scalars(select(LoginThrottle).where(
        LoginThrottle.key.in_([keys.source, keys.account]), LoginThrottle.locked_until > now))}
    if source := rows.get(keys.source):
        return errors.AccountLocked(headers=_retry_after(source.locked_until, now))
    if account := rows.get(keys.account):
        return errors.SignInThrottled(headers=_retry_after(account.locked_until, now))
    return None


def _row_for_update(db: Session, key: str, *, window: timedelta, now: datetime,
                    account_key: str | None = None) -> LoginThrottle:
    """The counter `key`, created if missing and locked for this transaction: concurrent failures
    count one after the other, and two first failures do not both insert."""
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    db.execute(dialect.insert(LoginThrottle).values(key=key, account_key=account_key, failures=0,
                                                    window_ends_at=now + window)
               .on_conflict_do_nothing(index_elements=["key"]))
    row = db.scalars(select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()
                     .execution_options(populate_existing=True)).one()
    if row.window_ends_at <= now:
        row.failures = 0
        row.window_ends_at = now + window
    row.failures += 1
    return row


def count_failure(db: Session, *, keys: Keys, settings: Settings, now: datetime) -> errors.AccountLocked | None:
    """Count a failed sign-in on both counters.

    Returns the AccountLocked error when this failure locked the address out of the email.
    """
    window = timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
    account = _row_for_update(db, keys.account, window=window, now=now)
    if account.failures >= settings.LOGIN_ACCOUNT_THROTTLE_FAILURES:
        account.locked_until = now + timedelta(seconds=settings.LOGIN_ACCOUNT_THROTTLE_SECONDS)
    source = _row_for_update(db, keys.source, window=window, now=now, account_key=keys.account)
    if source.failures < settings.LOGIN_MAX_FAILURES:
        return None
    # The lock ends the window: after it, the address starts from a clean count.
    source.failures = 0
    source.locked_until = source.window_ends_at = now + window
    return errors.AccountLocked(headers=_retry_after(source.locked_until, now))


def clear_source(db: Session, *, keys: Keys) -> None:
    """Forget this address's failures for this email (it signed in); the email's own count stays,
    so signing in does not reopen the full rate to everyone else."""
    db.execute(delete(LoginThrottle).where(LoginThrottle.key == keys.source))


def clear_account(db: Session, *, email: str, settings: Settings) -> int:
    """Lift every lock and forget every failure counted for `email` (as stored: normalised), from
    every address: a platform administrator's unlock. Returns how many counters went."""
    account = keys_for(email=email, ip=None, settings=settings).account
    return db.execute(delete(LoginThrottle).where(
        or_(LoginThrottle.key == account, LoginThrottle.account_key == account))).rowcount


def prune(db: Session, *, now: datetime | None = None) -> int:
    """Delete the counters that no longer count or lock anything; returns how many."""
    now = now or utcnow()
    return db.execute(delete(LoginThrottle).where(
        LoginThrottle.window_ends_at <= now,
        or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now))).rowcount
