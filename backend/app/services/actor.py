"""Who is acting, and from where: passed to services for authorisation and audit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from app.models import User


@dataclass(frozen=True)
class Actor:
    user: User | None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    # The session the request authenticated with, if any.
    session_id: uuid.UUID | None = None

    def as_user(self, user: User) -> Actor:
        return replace(self, user=user)
