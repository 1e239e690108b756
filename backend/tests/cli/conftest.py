"""Fixtures of the command-line tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def run(app, db_session):
    """Invoke a `flask` command with the test app; the test's own transaction is closed first
    (on SQLite it would hold the write lock the command needs)."""
    runner = app.test_cli_runner()

    def invoke(*args: str):
        db_session.commit()
        result = runner.invoke(args=list(args))
        db_session.expire_all()
        return result

    return invoke
