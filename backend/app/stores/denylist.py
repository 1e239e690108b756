"""Revoked access tokens: their `jti` is denied until the token would have expired anyway.

Redis when configured (shared by every instance, mirrored in each process), in-process otherwise.
Both are fast copies: the database holds the record of every denial (services.revocations), which
each process reads when it starts and, with Redis, whenever its feed subscribes anew.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.stores.redis_feed import RedisFeed

log = logging.getLogger(__name__)


# claim() keys of client assertions (oauth/server.py) share the denials' namespace; they are no denials.
CLAIM_PREFIX = "client-assertion:"


class DenialsUnknown(Exception):
    """Neither Redis nor the database could say whether a key is denied."""


class DenialRecord(Protocol):
    """The durable record of denials (services.revocations.DatabaseDenials). Its methods raise
    SQLAlchemyError when the database cannot answer."""

    def live(self) -> dict[str, int]:
        """Every denial still in force: key -> the Unix time it lapses."""

    def any_denied(self, *keys: str) -> bool: ...


class TokenDenylist(Protocol):
    def deny(self, jti: str, expires_at: int) -> None:
        """Deny `jti` until `expires_at`: in this process at once, and everywhere as soon as the store
        can share it. A store that cannot share it logs that and raises nothing: the record (the
        database) holds the denial and restores it."""

    def is_denied(self, *keys: str) -> bool:
        """Whether any of these is denied (one round trip for all of them).

        Raises:
            DenialsUnknown: neither the fast copy nor the record could answer.
        """

    def claim(self, key: str, expires_at: int) -> bool:
        """Atomically record `key` until `expires_at`; False if it was already recorded
        (single-use identifiers such as client-assertion jti)."""


class RedisDenylist:
    """Denials shared by every process and instance through Redis, and mirrored in each process so
    that a lookup needs no request to Redis.

    A denial is a key of its own (`{prefix}:denied-jti:<key>`, lapsing when the token would have
    expired), indexed in one sorted set (key -> the Unix time it lapses) so that a process can read
    them all. deny() writes both and publishes the denial in one transaction; every process's
    mirror takes it in from its feed (stores.redis_feed), and the denying process at once. On
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

    With a `record` (the database), Redis is a copy that can be rebuilt: on each new subscription,
    and on the first lookup without a feed, the record's live denials join the mirror and are
    written back to Redis (a Redis that came back empty, or missed a denial committed while it was
    down, has them again). While Redis cannot answer a lookup, the record does, and Redis is not
    asked again for REDIS_RETRY_SECONDS; when neither can, DenialsUnknown.

    claim() records single-use keys in the same namespace (SET NX is what makes it atomic).
    """

    REDIS_RETRY_SECONDS = 1.0

    def __init__(self, redis: Redis, prefix: str, feed: RedisFeed | None = None,
                 clock: Callable[[], float] = time.time, record: DenialRecord | None = None) -> None:
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
        self._record = record
        self._restored = record is None  # whether Redis and the mirror hold the record's denials
        self._redis_down_until = float("-inf")
        if feed is not None:
            feed.listen(self.channel, self._take_in)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:denied-jti:{key}"

    def deny(self, key: str, expires_at: int) -> None:
        now = self._clock()
        if expires_at <= now:
            return
        # This process denies it at once, whether or not Redis takes it (the record has it).
        self._remember(key, expires_at)
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(self._key(key), 1, exat=expires_at)
                pipe.zadd(self.denied, {key: expires_at}, gt=True)  # a later lapse wins, never an earlier one
                pipe.zremrangebyscore(self.denied, "-inf", int(now))
                pipe.publish(self.channel, f"{expires_at} {key}")
                pipe.execute()
        except RedisError as err:
            log.warning("denial recorded, not yet in Redis; restored when Redis is back (%s)", err)

    def is_denied(self, *keys: str) -> bool:
        if self._clock() >= self._redis_down_until:
            try:
                return self._redis_says(keys)
            except RedisError as err:
                self._redis_down_until = self._clock() + self.REDIS_RETRY_SECONDS
                log.warning("denylist: Redis unavailable, asking the database (%s)", err)
        if self._record is None:
            raise DenialsUnknown("Redis is unavailable and there is no record to ask")
        try:
            return self._record.any_denied(*keys)
        except SQLAlchemyError as err:
            raise DenialsUnknown("neither Redis nor the database answered") from err

    def _redis_says(self, keys: tuple[str, ...]) -> bool:
        if self._mirror_is_live():
            now, mirror = self._clock(), self._mirror
            return any(mirror.get(key, 0) > now for key in keys)
        if not self._restored and self._feed is None:
            self._restore()
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
            self._restored = self._record is None
            self._mirrored = subscription
        if not self._restored:
            self._restore()
        return True

    def _restore(self) -> None:
        """Take the record's live denials into the mirror and write them back to Redis. Left to
        the next lookup when the database cannot answer (the mirror then holds what Redis had)."""
        denials = _live_denials(self._record)
        if denials is None:
            return
        now = self._clock()
        denials = {key: lapses for key, lapses in denials.items() if lapses > now}
        for key, lapses in denials.items():
            self._remember(key, lapses)
        if denials:
            with self.redis.pipeline(transaction=True) as pipe:
                for key, lapses in denials.items():
                    pipe.set(self._key(key), 1, exat=lapses)
                pipe.zadd(self.denied, denials, gt=True)
                pipe.execute()
        self._restored = True

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


def _live_denials(record: DenialRecord) -> dict[str, int] | None:
    """The record's live denials; None, logged, when the database cannot answer (restored later)."""
    try:
        return record.live()
    except SQLAlchemyError as err:
        # The exception's class only: its text carries the statement's parameters.
        log.warning("denylist: the database did not answer; denials not restored yet (%s)", type(err).__name__)
        return None


class MemoryDenylist:
    """For a single process (development, tests without Redis). With a `record` (the database),
    the record's live denials are taken in once, at the first lookup it answers."""

    def __init__(self, record: DenialRecord | None = None) -> None:
        self._expiry: dict[str, int] = {}
        self._lock = threading.Lock()
        self._record = record

    def deny(self, jti: str, expires_at: int) -> None:
        now = time.time()
        with self._lock:
            self._expiry = {k: v for k, v in self._expiry.items() if v > now}
            if expires_at > now:
                self._expiry[jti] = expires_at

    def is_denied(self, *keys: str) -> bool:
        record = self._record  # read once: another thread may finish restoring meanwhile
        if record is not None:
            self._restore(record)
        now = time.time()
        with self._lock:
            return any(self._expiry.get(key, 0) > now for key in keys)

    def _restore(self, record: DenialRecord) -> None:
        denials = _live_denials(record)
        if denials is None:
            return
        with self._lock:
            for key, lapses in denials.items():
                self._expiry[key] = max(lapses, self._expiry.get(key, 0))
        self._record = None

    def claim(self, key: str, expires_at: int) -> bool:
        with self._lock:
            if self._expiry.get(key, 0) > time.time():
                return False
            self._expiry[key] = expires_at
            return True
