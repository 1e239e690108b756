"""Logs carry the request id, in JSON or text, and never a password."""

from __future__ import annotations

import io
import json
import logging
import sys
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from app import create_app
from app.extensions import db
from app.models import AuditEvent
from app.security.passwords import hash_password
from tests import factories
from tests.conftest import make_settings

BOOM = "/api/v1/_boom"
# Distinctive, so a match anywhere can only be a leak.
PASSWORD = "Quokka-Marmalade-Zeppelin-4417"
WRONG_PASSWORD = "Narwhal-Tangerine-Dirigible-9051"


FAILING_SQL = "/api/v1/_failing_sql"
# Stands for what a statement's parameters hold: a password hash, a token hash, an email.
SQL_PARAMETER = "$2b$04$Quokka.Marmalade.Zeppelin.hash.4417"


def _boom():
    raise RuntimeError("boom for the log")


def _failing_sql():
    # An IntegrityError on both databases (users.id has no default); not an OperationalError, which
    # SQLite also raises for a missing table and which the app answers as the database being down (503).
    db.session.execute(text("INSERT INTO users (password_hash) VALUES (:hash)"), {"hash": SQL_PARAMETER})


@dataclass
class LoggedApp:
    client: FlaskClient
    output: io.StringIO

    def lines(self) -> list[str]:
        return [line for line in self.output.getvalue().splitlines() if line.strip()]


def _gatehouse_handler() -> logging.Handler:
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "_gatehouse", False)]
    return handler


@pytest.fixture
def logged_app(database_url: str):
    """Build an app with a given LOG_FORMAT, a route that raises, and its log handler writing to a buffer."""
    built: list[Flask] = []

    def build(log_format: str) -> LoggedApp:
        app = create_app(make_settings(database_url, LOG_FORMAT=log_format))
        app.add_url_rule(BOOM, endpoint="boom", view_func=_boom)
        app.add_url_rule(FAILING_SQL, endpoint="failing_sql", view_func=_failing_sql)
        built.append(app)
        output = io.StringIO()
        _gatehouse_handler().setStream(output)
        return LoggedApp(app.test_client(), output)

    yield build
    _gatehouse_handler().setStream(sys.stderr)
    for app in built:
        with app.app_context():
            db.engine.dispose()


def test_request_log_line_in_json_format_carries_request_id(logged_app):
    logged = logged_app("json")

    response = logged.client.get(BOOM)

    records = [json.loads(line) for line in logged.lines()]
    assert records, "the failing request logged nothing"
    assert {r["request_id"] for r in records} == {response.headers["X-Request-ID"]}
    [error] = [r for r in records if r["level"] == "ERROR"]
    assert error["name"] == "app.api.envelope"
    assert "RuntimeError: boom for the log" in error["exc_info"]


def test_request_log_line_in_json_format_echoes_incoming_request_id(logged_app):
    logged = logged_app("json")

    logged.client.get(BOOM, headers={"X-Request-ID": "lb-7f3a9c21e0"})

    assert [json.loads(line)["request_id"] for line in logged.lines()] == ["lb-7f3a9c21e0"]


def test_request_log_line_in_text_format_carries_request_id(logged_app):
    logged = logged_app("text")

    response = logged.client.get(BOOM)

    first, *rest = logged.lines()
    assert f"[{response.headers['X-Request-ID']}]" in first
    assert "ERROR app.api.envelope" in first and "unhandled exception on GET /api/v1/_boom" in first
    assert rest[0].startswith("Traceback") and rest[-1] == "RuntimeError: boom for the log"


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_failing_statement_is_logged_without_its_parameters(logged_app, log_format):
    """Issue 12, finding 2: the trace of a failed statement carried its parameters (a new password's
    bcrypt hash): in SQLAlchemy's rendering of them (hidden by the engine: database.engine_options,
    hide_parameters) and in PostgreSQL's own message ("Failing row contains (...)": withheld by
    logging_setup.DatabaseErrorFilter)."""
    logged = logged_app(log_format)

    response = logged.client.get(FAILING_SQL)

    assert response.status_code == 500
    output = logged.output.getvalue()
    assert "(message withheld) on: INSERT INTO users" in output
    assert SQL_PARAMETER not in output


# --- passwords never reach logs or the audit trail -----------------------------------------------


def _record_text(record: logging.LogRecord) -> str:
    """Everything a handler could write for this record: message, arguments, extras, traceback."""
    parts = [record.getMessage(), repr(record.args), repr(vars(record))]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def _debug_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    """DEBUG on the root logger and on every logger that exists, including those set quieter
    (alembic.ini sets sqlalchemy.engine to WARN), so SQL and its parameters are captured too."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)


@pytest.mark.parametrize(("email", "password", "status", "result"), [
    ("owner@example.com", PASSWORD, 200, "success"),
    ("owner@example.com", WRONG_PASSWORD, 401, "failure"),
    ("nobody@example.com", WRONG_PASSWORD, 401, "failure"),
], ids=["success", "wrong-password", "unknown-email"])
def test_login_never_writes_password_to_logs_or_audit(api, db_session, caplog, email, password, status, result):
    factories.UserFactory(email="owner@example.com", password_hash=hash_password(PASSWORD, 4))
    _debug_everywhere(caplog)

    response = api.post("/api/v1/auth/login", json={"email": email, "password": password})

    assert response.status == status
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records), "SQL was not captured"
    leaks = [r.name for r in caplog.records if PASSWORD in _record_text(r) or WRONG_PASSWORD in _record_text(r)]
    assert leaks == []
    events = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.login")).all()
    assert [e.result for e in events] == [result]
    columns = AuditEvent.__table__.columns.keys()
    rows = [repr({c: getattr(e, c) for c in columns}) for e in events]
    assert [row for row in rows if PASSWORD in row or WRONG_PASSWORD in row] == []
