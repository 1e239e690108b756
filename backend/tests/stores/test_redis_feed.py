"""The per-process Redis feed that client versions and the denylist mirror read (stores.redis_feed)."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.stores.redis_feed import RedisFeed
from tests.conftest import Clock, RedisNetwork, SHARED_REDIS_URL, break_subscription, shared_feed, wait_for



class Reader:
    """What a reader of the feed is told."""

    def __init__(self, feed: RedisFeed, channel: str) -> None:
        self.messages: list[bytes] = []
        self.subscriptions: list[int] = []
        feed.listen(channel, self.messages.append, self.subscriptions.append)


def test_a_message_reaches_every_subscribed_process_without_a_request_to_redis():
    name = f"test-{uuid.uuid4().hex}"
    first, other = shared_feed(name), shared_feed(f"{name}-other")
    first_reader, other_reader = Reader(first, f"{name}:a"), Reader(other, f"{name}:a")
    assert first.live() == 1 and other.live() == 1
    assert first_reader.subscriptions == [1] and first_reader.messages == []

    Redis.from_url(SHARED_REDIS_URL).publish(f"{name}:a", "hello")
    wait_for(lambda: (first.live(), other.live()) and first_reader.messages and other_reader.messages,
             "the message never arrived")
    assert first_reader.messages == other_reader.messages == [b"hello"]
    assert first.live() == 1  # still the same subscription


def test_each_reader_gets_its_own_channel():
    name = f"test-{uuid.uuid4().hex}"
    feed = shared_feed(name)
    a, b = Reader(feed, f"{name}:a"), Reader(feed, f"{name}:b")
    assert feed.live() == 1 and a.subscriptions == b.subscriptions == [1]
    Redis.from_url(SHARED_REDIS_URL).publish(f"{name}:b", "for b")
    wait_for(lambda: feed.live() and b.messages, "the message never arrived")
    assert a.messages == [] and b.messages == [b"for b"]


def test_a_broken_subscription_is_replaced_by_a_new_one_that_readers_are_told_of(caplog):
    """Messages published while a process was not subscribed are lost to it: live() is 0 until it
    subscribes again, and the new subscription has a new number."""
    name = f"test-{uuid.uuid4().hex}"
    clock = Clock()
    feed = shared_feed(name, clock)
    reader = Reader(feed, f"{name}:a")
    assert feed.live() == 1
    break_subscription(name)

    with caplog.at_level(logging.WARNING, logger="app.stores.redis_feed"):
        assert feed.live() == 0
    assert "caches bypassed" in caplog.text
    assert feed.live() == 0  # no new attempt within RESUBSCRIBE_SECONDS

    clock.now += RedisFeed.RESUBSCRIBE_SECONDS
    assert feed.live() == 2
    assert reader.subscriptions == [1, 2]


def test_without_redis_live_is_zero_and_subscribing_is_retried_rarely():
    clock = Clock()
    unreachable = Redis.from_url("redis://127.0.0.1:9/0", socket_timeout=1, retry=Retry(NoBackoff(), 0))
    feed = RedisFeed(unreachable, clock=clock)
    attempts = []
    subscribe = feed._subscribe
    feed._subscribe = lambda: (attempts.append(clock.now), subscribe())
    assert feed.live() == 0
    assert feed.live() == 0
    assert attempts == [1000.0]
    clock.now += RedisFeed.RESUBSCRIBE_SECONDS
    assert feed.live() == 0
    assert attempts == [1000.0, 1000.0 + RedisFeed.RESUBSCRIBE_SECONDS]


def test_the_feed_vouches_for_itself_only_while_redis_has_confirmed_it_lately():
    """A connection can die without an error: a serving process PINGs on its subscription every
    CONFIRM_SECONDS, and live() is 0 while the latest answer is older than FRESH_SECONDS."""
    name = f"test-{uuid.uuid4().hex}"
    clock = Clock()
    feed = shared_feed(name, clock)
    Reader(feed, f"{name}:a")
    assert feed.live() == 1

    clock.now += RedisFeed.CONFIRM_SECONDS  # a PING goes out; the subscription's confirmation is still fresh
    assert feed.live() == 1
    # Past FRESH_SECONDS since the subscription, but not since the PING: vouched for once its answer is in.
    clock.now += RedisFeed.FRESH_SECONDS - RedisFeed.CONFIRM_SECONDS / 2
    wait_for(lambda: feed.live() == 1, "the PING was never answered")

    # An idle process: its confirmation is too old, until the PING sent now is answered. (Its last
    # PING's answer would be waiting in its socket; this clock jumps before it arrives.)
    wait_for(lambda: feed.live() and feed._ping_sent_at is None, "the last PING was never answered")
    clock.now += RedisFeed.FRESH_SECONDS + 1
    assert feed.live() == 0
    wait_for(lambda: feed.live() == 1, "the PING was never answered")  # the same subscription: nothing lost


def test_a_ping_left_unanswered_breaks_the_subscription():
    name = f"test-{uuid.uuid4().hex}"
    clock, network = Clock(), RedisNetwork()
    feed = RedisFeed(network.redis(), clock=clock)
    Reader(feed, f"{name}:a")
    assert feed.live() == 1
    network.flowing.clear()  # Redis's replies are held
    try:
        clock.now += RedisFeed.CONFIRM_SECONDS
        assert feed.live() == 1  # the PING is sent, and held
        clock.now += RedisFeed.SUBSCRIBE_TIMEOUT_SECONDS + 0.1
        assert feed.live() == 0
    finally:
        network.flowing.set()
    clock.now += RedisFeed.RESUBSCRIBE_SECONDS
    assert feed.live() == 2


def test_a_confirmation_counts_from_when_it_was_asked_for():
    """A PING's answer vouches for the messages published before Redis handled the PING, not for
    those published while the answer was on its way: freshness counts from when it was sent."""
    name = f"test-{uuid.uuid4().hex}"
    clock, network = Clock(1000.0), RedisNetwork()
    feed = RedisFeed(network.redis(), clock=clock)
    Reader(feed, f"{name}:a")
    assert feed.live() == 1
    network.flowing.clear()
    clock.now = 1001.0
    assert feed.live() == 1  # the PING goes out at 1001
    clock.now = 1001.9
    network.flowing.set()  # and its answer comes in at 1001.9
    wait_for(lambda: feed.live() and feed._ping_sent_at is None, "the PING was never answered")
    clock.now = 1001.0 + RedisFeed.FRESH_SECONDS + 0.5
    assert feed.live() == 0


def test_a_subscription_counts_as_confirmed_from_when_it_was_asked_for():
    name = f"test-{uuid.uuid4().hex}"
    clock, network = Clock(1000.0), RedisNetwork()
    feed = RedisFeed(network.redis(), clock=clock)
    Reader(feed, f"{name}:a")
    network.flowing.clear()

    def answer_late():
        time.sleep(0.1)
        clock.now = 1000.9
        network.flowing.set()
    threading.Thread(target=answer_late).start()
    assert feed.live() == 1  # subscribed at 1000, confirmed at 1000.9
    clock.now = 1000.0 + RedisFeed.FRESH_SECONDS + 0.3
    assert feed.live() == 0


def test_a_subscription_redis_py_renews_by_itself_is_a_broken_one():
    """redis-py reconnects and subscribes again on its own after a maintenance notification from
    Redis, whatever its retries: messages may have been lost in between, so readers must start
    again from a new subscription, whose messages the feed then reads from the new socket."""
    name = f"test-{uuid.uuid4().hex}"
    clock = Clock()
    feed = shared_feed(name, clock)
    reader = Reader(feed, f"{name}:a")
    assert feed.live() == 1
    feed._pubsub.connection._should_reconnect = True  # what redis-py sets on such a notification
    clock.now += RedisFeed.CONFIRM_SECONDS  # the PING reconnects first
    seen = []
    wait_for(lambda: seen.append(feed.live()) or seen[-1] != 1, "the renewed subscription went unnoticed")
    assert seen[-1] == 0

    clock.now += RedisFeed.RESUBSCRIBE_SECONDS
    assert feed.live() == 2 and reader.subscriptions == [1, 2]
    Redis.from_url(SHARED_REDIS_URL).publish(f"{name}:a", "after")
    wait_for(lambda: feed.live() and reader.messages, "the new subscription's message never arrived")
    assert reader.messages == [b"after"]


def test_readers_register_before_the_feed_subscribes():
    """A subscription made without a reader's channel cannot vouch for that reader's messages."""
    name = f"test-{uuid.uuid4().hex}"
    feed = shared_feed(name, Clock())
    Reader(feed, f"{name}:a")
    assert feed.live() == 1
    with pytest.raises(RuntimeError):
        Reader(feed, f"{name}:late")


def test_a_burst_of_messages_is_taken_in_whole_and_in_order():
    """redis-py reads ahead into its own buffer: messages that arrived together must all be taken in,
    although the socket has nothing more to read (and, the clock standing still, no PING's answer
    comes to stir it)."""
    name = f"test-{uuid.uuid4().hex}"
    feed = shared_feed(name, Clock())
    reader = Reader(feed, f"{name}:a")
    assert feed.live() == 1
    with Redis.from_url(SHARED_REDIS_URL).pipeline(transaction=False) as pipe:
        for n in range(50):
            pipe.publish(f"{name}:a", str(n))
        pipe.execute()
    wait_for(lambda: feed.live() and len(reader.messages) == 50, "messages were left unread")
    assert reader.messages == [str(n).encode() for n in range(50)]


def test_a_message_split_across_segments_is_read_whole_without_breaking_the_subscription():
    network = RedisNetwork(piece=16)
    name = f"test-{uuid.uuid4().hex}"
    feed = RedisFeed(network.redis(), clock=Clock())
    reader = Reader(feed, f"{name}:a")
    assert feed.live() == 1

    denial = f"{int(time.time()) + 600} {uuid.uuid4().hex}{uuid.uuid4().hex}"  # a denylist message's size
    Redis.from_url(SHARED_REDIS_URL).publish(f"{name}:a", denial)
    wait_for(lambda: feed.live() == 1 and reader.messages, "the message never arrived")
    assert reader.messages == [denial.encode()]
    assert reader.subscriptions == [1]  # the same subscription throughout


def test_a_message_its_reader_cannot_take_in_ends_the_subscription(caplog):
    """What the reader holds can no longer be vouched for: readers fall back until a new subscription."""
    name = f"test-{uuid.uuid4().hex}"
    clock = Clock()
    feed = shared_feed(name, clock)

    def refuse(data: bytes) -> None:
        raise ValueError("not a message of ours")
    feed.listen(f"{name}:a", refuse)
    assert feed.live() == 1

    Redis.from_url(SHARED_REDIS_URL).publish(f"{name}:a", "garbage")
    with caplog.at_level(logging.WARNING, logger="app.stores.redis_feed"):
        wait_for(lambda: feed.live() == 0, "the unreadable message was ignored")
    assert "unreadable message" in caplog.text
    clock.now += RedisFeed.RESUBSCRIBE_SECONDS
    assert feed.live() == 2


def test_a_subscription_redis_never_confirms_is_not_live():
    """Until Redis confirms it, a subscription may miss messages: it is given up after
    SUBSCRIBE_TIMEOUT_SECONDS, and tried again later."""
    network = RedisNetwork()
    clock = Clock()
    redis = network.redis()
    redis.ping()  # a connection made (its handshake answered) for the subscription to take from the pool
    feed = RedisFeed(redis, clock=clock)
    Reader(feed, f"test-{uuid.uuid4().hex}:a")
    network.flowing.clear()  # Redis's replies are held back: the SUBSCRIBE goes out, no confirmation comes
    assert feed.live() == 0
    network.flowing.set()
    clock.now += RedisFeed.RESUBSCRIBE_SECONDS
    assert feed.live() == 1
