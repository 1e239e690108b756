"""The SAML assertion replay cache's two stores, both shared by every instance (SAML Profiles §4.1.4.5:
the SP MUST ensure a bearer assertion is not used more than once within its validity period): Redis when
REDIS_URL is set (SET NX, lapsing at the assertion's NotOnOrAfter plus the clock skew), the database's
saml_assertion_uses table otherwise (its unique constraint decides between two racing instances).
services.saml_replay.accept_assertion_once is the rule that uses them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import errors
from app.models import SAMLAssertionUse


class AssertionReplayCache(Protocol):
    def accept_once(self, *, provider_id: uuid.UUID, assertion_id: str, expires_at: datetime,
                    now: datetime) -> bool:
        """Record the assertion until `expires_at`; False when it was recorded before (a replay).

        Raises:
            FederationFailed: the store cannot answer (a replay cannot be ruled out).
        """


class RedisAssertionReplayCache:
    """A key per assertion, `{prefix}:saml-assertion:<provider id>:<assertion id>`, set only if absent."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def accept_once(self, *, provider_id: uuid.UUID, assertion_id: str, expires_at: datetime,
                    now: datetime) -> bool:
        try:
            return bool(self._redis.set(f"{self._prefix}:saml-assertion:{provider_id}:{assertion_id}", 1,
                                        exat=max(int(expires_at.timestamp()), int(now.timestamp()) + 1), nx=True))
        except RedisError:
            raise errors.FederationFailed("saml_replay_cache_unavailable", "Signing in through your identity "
                                                                            "provider is unavailable right now. "
                                                                            "Please try again.") from None


class DatabaseAssertionReplayCache:
    """A saml_assertion_uses row per assertion, written in the session of the request at hand (`session()`),
    so it commits with the sign-in; expired rows go as new ones come."""

    def __init__(self, session: Callable[[], Session]) -> None:
        self._session = session

    def accept_once(self, *, provider_id: uuid.UUID, assertion_id: str, expires_at: datetime,
                    now: datetime) -> bool:
        db = self._session()
        db.execute(delete(SAMLAssertionUse).where(SAMLAssertionUse.expires_at <= now)
                   .execution_options(synchronize_session=False))
        try:
            with db.begin_nested():
                db.add(SAMLAssertionUse(provider_id=provider_id, assertion_id=assertion_id, expires_at=expires_at))
        except IntegrityError:
            return False
        return True
