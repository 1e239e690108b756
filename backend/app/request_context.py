"""Build the service-layer Actor from the current HTTP request (edge layers only)."""

from __future__ import annotations

import uuid

from flask import request

from app.models import User
from app.security.client_ip import client_ip
from app.security.request_id import current_request_id
from app.services.actor import Actor


def request_actor(user: User | None = None, session_id: uuid.UUID | None = None) -> Actor:
    return Actor(user=user, ip=client_ip(), user_agent=request.headers.get("User-Agent"),
                 request_id=current_request_id(), session_id=session_id)
