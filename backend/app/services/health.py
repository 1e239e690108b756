"""Dependency checks for /api/health."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def check_components(db: Session, *, redis_answers: Callable[[], bool | None]) -> dict[str, str]:
    """Status per component: "ok", "error", or "not_configured" (Redis only). `redis_answers()`:
    whether Redis answers, None when there is none (stores.Stores.redis_answers)."""
    components = {"database": "ok", "redis": "not_configured"}
    try:
        db.execute(text("SELECT 1"))
    except SQLAlchemyError:
        log.exception("health check: database unavailable")
        db.rollback()
        components["database"] = "error"
    redis = redis_answers()
    if redis is not None:
        components["redis"] = "ok" if redis else "error"
    return components
