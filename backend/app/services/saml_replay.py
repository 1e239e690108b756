"""Each SAML assertion is accepted once until it expires (SAML Profiles §4.1.4.5), whichever instance
receives it: the replay cache (stores.saml_replay: Redis when configured, the database otherwise) is passed
in by the edge.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from app import errors
from app.stores.saml_replay import AssertionReplayCache


def accept_assertion_once(cache: AssertionReplayCache, *, provider_id: uuid.UUID, assertion_id: str,
                          expires_at: datetime, now: datetime) -> None:
    """Accept a SAML assertion's ID once until it expires.

    Raises:
        FederationFailed: the assertion was used before, or the cache cannot answer.
    """
    if not cache.accept_once(provider_id=provider_id, assertion_id=assertion_id, expires_at=expires_at, now=now):
        raise errors.FederationFailed("saml_replayed", "This sign-in response was already used.")
