"""Engine options per backend.

SQLite: foreign keys on (ON DELETE rules), WAL, and BEGIN IMMEDIATE for every
transaction. pysqlite's deferred BEGIN lets two requests both read and then
both try to write, which SQLite resolves by failing one with "database is
locked"; taking the write lock at BEGIN makes them queue instead (SQLAlchemy's
documented pysqlite recipe).

PostgreSQL: a pooled connection is pinged before use only if it sat idle in the
pool for PING_AFTER_IDLE_SECONDS or more, as HikariCP does (aliveBypassWindowMs,
500 ms). SQLAlchemy's pool_pre_ping pings on every checkout: a round trip per
request, two of the eleven in a code + PKCE exchange. A connection checked in
a moment ago was alive then; if the server went away since, the statement fails
with a disconnect, the request is answered 503 (DATABASE_UNAVAILABLE) and
SQLAlchemy invalidates every pooled connection, so the next request reconnects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import InterfaceError, InvalidatePoolError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# What a database that is down, restarting or out of connections raises (connection refused or
# lost, pool exhausted): answered 503 in each endpoint's own format, never 500.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)
PING_AFTER_IDLE_SECONDS = 0.5
# Where a pooled connection's record keeps the time it was last connected or checked in.
_IDLE_SINCE = "gatehouse.idle_since"


def engine_options(database_url: str) -> dict[str, Any]:
    # A statement's parameters hold password and token hashes and emails: never in an exception's
    # message, so never in a logged trace, nor in SQL echoed at DEBUG.
    common = {"hide_parameters": True}
    if database_url.startswith("sqlite"):
        return {**common, "connect_args": {"timeout": 30, "check_same_thread": False}}
    return {**common, "pool_size": 10, "max_overflow": 10}


def configure_engine(engine: Engine, *, clock: Callable[[], float] = time.monotonic) -> None:
    if engine.dialect.name != "sqlite":
        _ping_after_idle(engine, clock)
        return

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _ping_after_idle(engine: Engine, clock: Callable[[], float]) -> None:
    dialect = engine.dialect

    @event.listens_for(engine.pool, "connect")
    @event.listens_for(engine.pool, "checkin")
    def on_idle(_dbapi_connection, record) -> None:
        record.info[_IDLE_SINCE] = clock()

    @event.listens_for(engine.pool, "checkout")
    def on_checkout(dbapi_connection, record, _proxy) -> None:
        if clock() - record.info.get(_IDLE_SINCE, float("-inf")) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if not dialect.is_disconnect(error, dbapi_connection, None):
                raise
            # As pool_pre_ping does: every pooled connection is suspect; the pool connects anew.
            raise InvalidatePoolError() from error
