"""Engine options per backend.

SQLite: foreign keys on (ON DELETE rules), WAL, and BEGIN IMMEDIATE for every
transaction. pysqlite's deferred BEGIN lets two requests both read and then
both try to write, which SQLite resolves by failing one with "database is
locked"; taking the write lock at BEGIN makes them queue instead (SQLAlchemy's
documented pysqlite recipe). PostgreSQL needs nothing special.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# What a database that is down, restarting or out of connections raises (connection refused or
# lost, pool exhausted): answered 503 in each endpoint's own format, never 500.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)


def engine_options(database_url: str) -> dict[str, Any]:
    # A statement's parameters hold password and token hashes and emails: never in an exception's
    # message, so never in a logged trace, nor in SQL echoed at DEBUG.
    common = {"hide_parameters": True}
    if database_url.startswith("sqlite"):
        return {**common, "connect_args": {"timeout": 30, "check_same_thread": False}}
    return {**common, "pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
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
