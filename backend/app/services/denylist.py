"""Revoked access tokens: their `jti` is denied until the token would have expired anyway.

Redis when configured (shared by every instance), in-process otherwise.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from redis import Redis


class TokenDenylist(Protocol):
    def deny(self, jti: str, expires_at: int) -> None: ...

    def is_denied(self, *keys: str) -> bool:
        """Whether any of these is denied (one round trip for all of them)."""

    def claim(self, key: str, expires_at: int) -> bool:
        """Atomically record `key` until `expires_at`; False if it was already recorded
        (single-use identifiers such as client-assertion jti)."""


class RedisDenylist:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def deny(self, jti: str, expires_at: int) -> None:
        if expires_at > time.time():
            self.redis.set(f"{self.prefix}:denied-jti:{jti}", 1, exat=expires_at)

    def is_denied(self, *keys: str) -> bool:
        return bool(self.redis.exists(*(f"{self.prefix}:denied-jti:{key}" for key in keys)))

    def claim(self, key: str, expires_at: int) -> bool:
        return bool(self.redis.set(f"{self.prefix}:denied-jti:{key}", 1, exat=expires_at, nx=True))


class MemoryDenylist:
    """For a single process (development, tests without Redis)."""

    def __init__(self) -> None:
        self._expiry: dict[str, int] = {}
        self._lock = threading.Lock()

    def deny(self, jti: str, expires_at: int) -> None:
        now = time.time()
        with self._lock:
            self._expiry = {k: v for k, v in self._expiry.items() if v > now}
            if expires_at > now:
                self._expiry[jti] = expires_at

    def is_denied(self, *keys: str) -> bool:
        now = time.time()
        with self._lock:
            return any(self._expiry.get(key, 0) > now for key in keys)

    def claim(self, key: str, expires_at: int) -> bool:
        with self._lock:
            if self._expiry.get(key, 0) > time.time():
                return False
            self._expiry[key] = expires_at
            return True
