"""Revoked access tokens: their `jti` is denied until the token would have expired anyway.

Redis when configured (shared by every instance, mirrored in each process), in-process otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from redis import Redis

from app.services.redis_feed import RedisFeed


# claim() keys of client assertions (oauth/server.py) share the denials' namespace; they are no denials.
CLAIM_PREFIX = "client-assertion:"


class TokenDenylist(Protocol):
    def deny(self, jti: str, expires_at: int) -> None: ...

    def is_denied(self, *keys: str) -> bool:
        """Whether any of these is denied (one round trip for all of them)."""

    def claim(self, key: str, expires_at: int) -> bool:
        """Atomically record `key` until `expires_at`; False if it was already recorded
        (single-use identifiers such as client-assertion jti)."""


class RedisDenylist:
    """Denials shared by every process and instance through Redis, and mirrored in each process so
    that a lookup needs no request to Redis.

    A denial is a key of its own (`{prefix}:denied-jti:<key>`, lapsing when the token would have
    expired), indexed in one sorted set (key -> the Unix time it lapses) so that a process can read
    them all. deny() writes both and publishes the denial in one transaction; every process's
    mirror takes it in from its feed (services.redis_feed), and the denying process at once. On
    each new subscription the mirror first reads the whole set: nothing published while it was not
    subscribed is missed. While the feed cannot vouch for itself (no subscription, or no recent
    confirmation from Redis), is_denied asks Redis for the keys. A revocation thus reaches every
    process as fast as Redis delivers it, and in every failure within the feed's FRESH_SECONDS;
    RFC 7009 §2 allows such a propagation delay and asks that it be short.

    Builds before the set wrote the keys alone: the first process to read the set adds theirs to
    it (`_index_earlier_denials`), once. A denial made later on an instance still running such a
    build is in no mirror, so a rolling upgrade from one runs the upgraded instances without the
    mirror (DENYLIST_MIRROR=false: no feed here, every lookup asks Redis) until no earlier instance
    is left, then restarts them with it. Earlier builds' lookups see every denial.

    claim() records single-use keys in the same namespace (SET NX is what makes it atomic).
    """

    def __init__(self, redis: Redis, prefix: str, feed: RedisFeed | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.prefix = prefix
        self.denied = f"{prefix}:denied"
        self.channel = f"{prefix}:denials"
        self._feed = feed
        self._clock = clock
        self._mirror: dict[str, int] = {}
        self._mirrored = 0  # the subscription whose snapshot of the set the mirror holds
        self._pruned_size = 0
        self._lock = threading.Lock()
        if feed is not None:
            feed.listen(self.channel, self._take_in)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:denied-jti:{key}"

    def deny(self, key: str, expires_at: int) -> None:
        now = self._clock()
        if expires_at <= now:
            return
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(key), 1, exat=expires_at)
            pipe.zadd(self.denied, {key: expires_at}, gt=True)  # a later lapse wins, never an earlier one
            pipe.zremrangebyscore(self.denied, "-inf", int(now))
            pipe.publish(self.channel, f"{expires_at} {key}")
            pipe.execute()
        self._remember(key, expires_at)

    def is_denied(self, *keys: str) -> bool:
        if self._mirror_is_live():
            now, mirror = self._clock(), self._mirror
            return any(mirror.get(key, 0) > now for key in keys)
        return bool(self.redis.exists(*(self._key(key) for key in keys)))

    def claim(self, key: str, expires_at: int) -> bool:
        return bool(self.redis.set(self._key(key), 1, exat=expires_at, nx=True))

    def _mirror_is_live(self) -> bool:
        subscription = self._feed.live() if self._feed is not None else 0
        if not subscription:
            return False
        # Each subscription has a new number: the set is read again, for what was published while
        # unsubscribed. Read after the subscription was confirmed, a denial is in it, on the feed, or both.
        if subscription != self._mirrored:
            self._index_earlier_denials()
            snapshot = self.redis.zrangebyscore(self.denied, f"({int(self._clock())}", "+inf", withscores=True)
            for key, lapses in snapshot:
                self._remember(key.decode(), int(lapses))
            self._mirrored = subscription
        return True

    def _index_earlier_denials(self) -> None:
        """Add to the set the denials of builds that wrote only their keys (see the class docstring),
        unless a process has done it already. Two processes doing it at once add the same entries."""
        done = f"{self.denied}:indexed"
        if self.redis.exists(done):
            return
        namespace = self._key("")
        names = [name.decode() for name in self.redis.scan_iter(match=f"{namespace}*", count=1000)]
        names = [name for name in names if not name.startswith(f"{namespace}{CLAIM_PREFIX}")]
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.pexpiretime(name)
            lapses = pipe.execute()
        earlier = {name.removeprefix(namespace): ms // 1000 for name, ms in zip(names, lapses) if ms > 0}
        if earlier:
            self.redis.zadd(self.denied, earlier, gt=True)
        self.redis.set(done, 1)

    def _take_in(self, data: bytes) -> None:
        lapses, _, key = data.decode().partition(" ")
        self._remember(key, int(lapses))

    def _remember(self, key: str, expires_at: int) -> None:
        with self._lock:
            if expires_at > self._mirror.get(key, 0):
                self._mirror[key] = expires_at
            # Lapsed denials go once the mirror has doubled since the last sweep: amortised, never per lookup.
            if len(self._mirror) > 2 * self._pruned_size + 64:
                now = self._clock()
                self._mirror = {k: v for k, v in self._mirror.items() if v > now}
                self._pruned_size = len(self._mirror)


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
