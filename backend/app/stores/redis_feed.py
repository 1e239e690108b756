"""One Redis pub/sub subscription per process, read by polling its socket instead of asking Redis.

Readers register a channel with `listen`: the client versions (stores.client_cache) and the token
denylist's mirror (stores.denylist). Each lookup of theirs first calls `live()`, which takes in
whatever has arrived (a poll of the socket, no request to Redis; about 5 µs). Redis hands a
message to every subscriber while it handles the PUBLISH, so a change published before a request
starts is already waiting in every process's socket by then, network transit aside.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections.abc import Callable

from redis import Redis
from redis.client import PubSub
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)


class RedisFeed:
    """Messages published on the channels readers listen to, taken in without a round trip.

    Each confirmed subscription, the first or one made after the connection broke, has a new
    number, and a reader's `on_subscribed(number)` runs before any of its messages: messages
    published while a process was not subscribed are lost to it, so a reader must trust nothing it
    built from an earlier subscription alone (the client versions start counting again, the
    denylist mirror reads the whole set again).

    A connection can also die without an error. So a process that is serving asks Redis, at most
    once every CONFIRM_SECONDS, to confirm the subscription: a PING on it, whose reply comes after
    every message published before Redis handled it. `live()` vouches for the feed only while the
    latest confirmation is at most FRESH_SECONDS old; otherwise readers ask the database or Redis
    itself. A PING unanswered for SUBSCRIBE_TIMEOUT_SECONDS breaks the connection.

    Give `redis` no retries (Retry(NoBackoff(), 0)): a reconnection made behind our back would hide
    the gap in which messages were lost. Safe to share between threads.
    """

    RESUBSCRIBE_SECONDS = 1.0  # between attempts while Redis is unreachable
    SUBSCRIBE_TIMEOUT_SECONDS = 2.0
    CONFIRM_SECONDS = 1.0
    FRESH_SECONDS = 2.0

    def __init__(self, redis: Redis, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self._clock = clock
        self._lock = threading.Lock()
        self._readers: dict[bytes, tuple[Callable[[bytes], None], Callable[[int], None] | None]] = {}
        self._pubsub: PubSub | None = None
        self._poll = select.poll()  # the live subscription's socket
        self._subscriptions = 0  # how many have been confirmed
        self._subscription = 0  # the live one's number; 0 while there is none
        self._confirmed_at = float("-inf")  # when the latest request Redis has answered was sent
        self._ping_sent_at: float | None = None  # the PING awaiting its answer
        self._retry_at = float("-inf")
        self._warned_at = float("-inf")  # one warning a minute while Redis is unreachable, not one per request

    def listen(self, channel: str, on_message: Callable[[bytes], None],
               on_subscribed: Callable[[int], None] | None = None) -> None:
        """Call `on_message(data)` for each message on `channel`, and `on_subscribed(number)` when a
        subscription is confirmed, before its messages. Every reader registers before the first `live()`:
        a subscription made without its channel could not vouch for it."""
        with self._lock:
            if self._pubsub is not None:
                raise RuntimeError(f"{channel} must be listened to before the feed subscribes")
            self._readers[channel.encode()] = (on_message, on_subscribed)

    def live(self) -> int:
        """Take in what has arrived; the number of the live subscription, or 0 when there is none or
        its latest confirmation is older than FRESH_SECONDS. Readers' callbacks run inside."""
        with self._lock:
            try:
                self._take_in()
            except RedisError as err:
                self._unsubscribed(err)
            if self._subscription and self._clock() - self._confirmed_at <= self.FRESH_SECONDS:
                return self._subscription
            return 0

    def _take_in(self) -> None:
        if self._pubsub is None:
            if self._clock() < self._retry_at:
                return
            self._retry_at = self._clock() + self.RESUBSCRIBE_SECONDS
            self._subscribe()  # its reads may have buffered messages beyond the confirmations: drain
        # Otherwise a poll of the socket first (under a µs; redis-py's own check costs about 10 µs):
        # the loop below drains until nothing is left, so when the socket is quiet nothing waits in
        # redis-py's buffer either.
        elif not self._poll.poll(0):
            self._confirm()
            return
        connection = self._pubsub.connection
        while connection.can_read(timeout=0):
            # Once its first bytes are in, a message is read whole, waiting (up to the socket timeout)
            # for the rest of it: get_message(timeout=0) would time out on a message split across
            # TCP segments and break the subscription.
            message = self._pubsub.handle_message(connection.read_response(disconnect_on_error=False,
                                                                           push_request=True))
            if message is None:
                continue
            if message["type"] == "message":
                self._hand_over(message["channel"], message["data"])
            elif message["type"] == "pong":
                self._confirmed_at, self._ping_sent_at = self._ping_sent_at, None
            elif message["type"] == "subscribe":
                # redis-py reconnected and subscribed again by itself (it does on a maintenance
                # notification, retries or not): messages may have been lost in between, and the poll
                # watches the old socket. Treated as the break it is.
                raise RedisError("redis-py renewed the subscription by itself")
        self._confirm()

    def _hand_over(self, channel: bytes, data: bytes) -> None:
        try:
            self._readers[channel][0](data)
        except Exception as err:
            # A message its reader cannot take in (published by something else on our channel): what
            # the reader holds can no longer be vouched for, so the subscription goes, and with it the trust.
            raise RedisError(f"unreadable message on {channel.decode()}: {err!r}") from err

    def _confirm(self) -> None:
        now = self._clock()
        if self._ping_sent_at is not None:
            if now - self._ping_sent_at > self.SUBSCRIBE_TIMEOUT_SECONDS:
                raise RedisTimeoutError("Redis did not answer a PING on the subscription")
        elif now - self._confirmed_at >= self.CONFIRM_SECONDS:
            self._ping_sent_at = now
            self._pubsub.ping()

    def _subscribe(self) -> None:
        """Subscribe and wait for Redis to confirm every channel: from then on every message reaches us."""
        sent_at = self._clock()
        self._pubsub = self.redis.pubsub()
        self._pubsub.subscribe(*self._readers)
        for _ in self._readers:
            confirmation = self._pubsub.get_message(timeout=self.SUBSCRIBE_TIMEOUT_SECONDS)
            if confirmation is None or confirmation["type"] != "subscribe":
                raise RedisTimeoutError("Redis did not confirm the subscription")
        self._confirmed_at, self._ping_sent_at = sent_at, None
        # redis-py keeps the socket private; a reconnection would replace it, and this feed allows none.
        self._poll = select.poll()
        self._poll.register(self._pubsub.connection._sock, select.POLLIN)
        self._new_subscription()

    def _new_subscription(self) -> None:
        self._subscriptions += 1
        self._subscription = self._subscriptions
        for _, on_subscribed in self._readers.values():
            if on_subscribed is not None:
                on_subscribed(self._subscription)

    def _unsubscribed(self, err: RedisError) -> None:
        self._subscription = 0
        if self._pubsub is not None:
            with contextlib.suppress(RedisError):
                self._pubsub.close()
            self._pubsub = None
        if self._clock() - self._warned_at >= 60:
            self._warned_at = self._clock()
            log.warning("Redis feed down, caches bypassed: no subscription (%s)", err)
