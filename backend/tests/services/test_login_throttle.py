"""services.login_throttle: the keys failures are counted under, and counting them under concurrency."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import LoginThrottle
from app.services import login_throttle
from tests.conftest import wait_for

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("ip, source", [
    ("192.0.2.7", "192.0.2.7"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
    (None, ""),
    ("unknown", "unknown"),
], ids=["ipv4", "ipv4-mapped", "ipv6", "ipv6-upper-case", "none", "not-an-address"])
def test_source_of_groups_ipv6_by_64(ip, source):
    assert login_throttle.source_of(ip) == source


def test_keys_for_hold_no_email_and_depend_on_the_secret_key(settings):
    keys = login_throttle.keys_for(email="ada@example.com", ip="192.0.2.7", settings=settings)
    rotated = login_throttle.keys_for(email="ada@example.com", ip="192.0.2.7",
                                      settings=dataclasses.replace(settings, SECRET_KEY="another-" + "k" * 40))

    assert keys.source != keys.account
    assert all("ada" not in key and len(key) == 64 for key in (keys.source, keys.account))
    assert rotated.source != keys.source and rotated.account != keys.account


def failures(engine, keys: login_throttle.Keys) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_([keys.source, keys.account])))
        return {"source" if row.key == keys.source else "account": row.failures for row in rows}


def is_waiting_for_a_lock(engine) -> bool:
    """Whether a PostgreSQL backend waits for a row lock. SQLite takes its one write lock at BEGIN
    (app/database.py), so there a second writer cannot start before the first commits."""
    if engine.dialect.name != "postgresql":
        return True
    with engine.connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")) > 0


@pytest.mark.parametrize("earlier", [0, 1], ids=["first-failures", "later-failures"])
def test_count_failure_waits_for_a_concurrent_count_and_loses_none(app, settings, earlier):
    """Two failures counted at once: the second reads the count after the first commits, not before,
    and two first failures of an email do not both create its counters."""
    with app.app_context():
        engine = db.engine
    keys = login_throttle.keys_for(email="racer@example.com", ip="192.0.2.7", settings=settings)
    for _ in range(earlier):
        with Session(engine) as session:
            login_throttle.count_failure(session, keys=keys, settings=settings, now=T0)
            session.commit()
    errors: list[BaseException] = []

    def count_second() -> None:
        try:
            with Session(engine) as second:
                login_throttle.count_failure(second, keys=keys, settings=settings, now=T0)
                second.commit()
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    with Session(engine) as first:
        login_throttle.count_failure(first, keys=keys, settings=settings, now=T0)
        first.flush()
        thread = threading.Thread(target=count_second)
        thread.start()
        wait_for(lambda: is_waiting_for_a_lock(engine), "the second count to wait for the first", seconds=10)
        first.commit()
    thread.join(timeout=30)

    assert not errors, errors
    assert failures(engine, keys) == {"source": earlier + 2, "account": earlier + 2}
