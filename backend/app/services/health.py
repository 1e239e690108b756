"""Dependency checks for /api/health."""

from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def check_components(db: Session, redis: Redis | None) -> dict[str, str]:
    """Status per component: "ok", "error", or "not_configured" (Redis only)."""
    components = {"database": "ok", "redis": "not_configured"}
    try:
        db.execute(text("SELECT 1"))
    except SQLAlchemyError:
        log.exception("health check: database unavailable")
        db.rollback()
        components["database"] = "error"
    if redis is not None:
        try:
            redis.ping()
            components["redis"] = "ok"
        except RedisError:
            log.exception("health check: redis unavailable")
            components["redis"] = "error"
    return components
