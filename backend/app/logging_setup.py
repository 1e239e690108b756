"""Structured logs: JSON in production, readable text in development; both carry the request id."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter
from sqlalchemy.exc import DBAPIError

from app.config import Settings
from app.security.request_id import RequestIdFilter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(DatabaseErrorFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_gatehouse", False)]:
        root.removeHandler(old)
    handler._gatehouse = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.LOG_LEVEL)


class WithheldDatabaseError(Exception):
    """Stands in a logged trace for a database error whose message was withheld."""


class DatabaseErrorFilter(logging.Filter):
    """A database's own error message can quote a statement's values (PostgreSQL: `DETAIL: Failing row
    contains (...)`, `Key (email)=(...) already exists`), which the engine's hide_parameters does not
    reach: a logged trace keeps its frames and the statement, and names the error's class instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = _database_error(record.exc_info[1])
            if error is not None:
                cause = type(error.orig or error).__name__
                withheld = WithheldDatabaseError(f"{cause} (message withheld) on: {error.statement}")
                record.exc_info = (WithheldDatabaseError, withheld, record.exc_info[2])
                record.exc_text = None
        return True


def _database_error(error: BaseException | None) -> DBAPIError | None:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, DBAPIError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
