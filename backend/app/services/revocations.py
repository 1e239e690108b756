"""Revocations: the database is the record of every denial; the denylist (stores.denylist) its fast copy.

A denial is a row of `revoked_tokens`, written in the transaction that revokes (with its audit
event), and handed to the denylist once that transaction commits (`publish_denials`, an
after-commit hook): a revocation is either committed and audited, or nothing at all. When Redis
cannot take it, the row still stands, and every process reads the rows again when its Redis feed
subscribes anew (stores.denylist.RedisDenylist).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import RevokedToken
from app.models.base import utcnow
from app.stores.denylist import TokenDenylist

# Session.info key of the denials waiting for the transaction to commit.
PENDING_DENIALS_KEY = "gatehouse.pending_denials"

_UPSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def deny_token(db: Session, *, denylist: TokenDenylist, key: str, expires_at: int) -> None:
    """Deny `key` (an access token's jti, or services.organizations.organization_token_key) until
    `expires_at` (Unix time): recorded now, on the denylist once `db` commits. A later lapse wins."""
    if expires_at <= time.time():
        return
    dialect = db.get_bind().dialect.name
    insert = _UPSERTS[dialect](RevokedToken).values(key=key, expires_at=datetime.fromtimestamp(expires_at, UTC),
                                                    revoked_at=utcnow())
    later = func.greatest if dialect == "postgresql" else func.max  # SQLite's two-argument max is a greatest
    db.execute(insert.on_conflict_do_update(index_elements=[RevokedToken.key], set_={
        "expires_at": later(RevokedToken.expires_at, insert.excluded.expires_at)}))
    db.info.setdefault(PENDING_DENIALS_KEY, []).append((denylist, key, expires_at))


def publish_denials(db: Session) -> None:
    """After a commit: the committed denials go on their denylists. One Redis cannot take stays
    in the record, from where the processes' denylists restore it (stores.denylist)."""
    for denylist, key, expires_at in db.info.pop(PENDING_DENIALS_KEY, []):
        denylist.deny(key, expires_at)


def drop_denials(db: Session) -> None:
    """After a rollback: the denials were never recorded."""
    db.info.pop(PENDING_DENIALS_KEY, None)


def prune_lapsed_denials(db: Session, *, now: datetime | None = None) -> int:
    """Delete the denials whose tokens have expired anyway; how many there were."""
    pruned = db.execute(delete(RevokedToken).where(RevokedToken.expires_at <= (now or utcnow())))
    return pruned.rowcount


class DatabaseDenials:
    """The record as the denylists read it (stores.denylist.DenialRecord), through `session()`:
    the session of the request or command at hand."""

    def __init__(self, session: Callable[[], Session]) -> None:
        self._session = session

    def live(self) -> dict[str, int]:
        rows = self._read(select(RevokedToken.key, RevokedToken.expires_at).where(RevokedToken.expires_at > utcnow()))
        return {key: int(expires_at.timestamp()) for key, expires_at in rows}

    def any_denied(self, *keys: str) -> bool:
        return bool(self._read(select(RevokedToken.key).where(RevokedToken.key.in_(keys),
                                                               RevokedToken.expires_at > utcnow()).limit(1)))

    def _read(self, statement) -> list:
        db = self._session()
        try:
            return list(db.execute(statement))
        except SQLAlchemyError:
            # A failed statement leaves the session unusable until it rolls back.
            db.rollback()
            raise
