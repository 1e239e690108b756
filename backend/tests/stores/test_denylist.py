"""The token denylist: revoked access tokens and single-use identifiers (RFC 7009 §2, RFC 7523 §3)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app import create_app
from app.extensions import db
from app.stores.denylist import CLAIM_PREFIX, MemoryDenylist, RedisDenylist
from app.stores.redis_feed import RedisFeed
from tests.conftest import (Clock, RedisNetwork, SHARED_REDIS_URL, break_subscription, make_settings, shared_feed,
                            wait_for)


@pytest.fixture(params=["memory", "redis"])
def denylist(request):
    if request.param == "memory":
        return MemoryDenylist()
    return process(f"test-{uuid.uuid4().hex}", prefix=f"test-{uuid.uuid4().hex}")


def test_deny_then_is_denied_until_expiry(denylist):
    denylist.deny("jti-1", int(time.time()) + 60)

    assert denylist.is_denied("jti-1")
    assert not denylist.is_denied("jti-2")


def test_any_of_several_keys_denies(denylist):
    """An organization's token is checked against its jti and its organization's marker at once."""
    denylist.deny("org:marker", int(time.time()) + 60)

    assert denylist.is_denied("jti-live", "org:marker")
    assert denylist.is_denied("org:marker", "jti-live")
    assert not denylist.is_denied("jti-live", "org:other")


def test_deny_already_expired_token_records_nothing(denylist):
    denylist.deny("jti-old", int(time.time()) - 1)

    assert not denylist.is_denied("jti-old")


def test_claim_twice_second_is_refused(denylist):
    expires = int(time.time()) + 60

    assert denylist.claim("assertion-1", expires) is True
    assert denylist.claim("assertion-1", expires) is False


def test_claim_concurrently_exactly_one_wins(denylist):
    """RFC 7523 §3 item 7: a client assertion's jti is single-use, even under a race."""
    expires, results, barrier = int(time.time()) + 60, [], threading.Barrier(8)

    def claim():
        barrier.wait()
        results.append(denylist.claim("assertion-race", expires))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False] * 7 + [True]


# --- shared through Redis: every process mirrors the set -------------------------------------------


def process(name: str, prefix: str, **options) -> RedisDenylist:
    """One process's denylist as create_app makes it, with its own feed and its own named
    connection for everything else, whose last command tells whether a lookup asked Redis."""
    feed = options.pop("feed", None) or shared_feed(name, options.pop("feed_clock", None))
    return RedisDenylist(Redis.from_url(SHARED_REDIS_URL, client_name=f"{name}-set"), prefix, feed=feed, **options)


def last_command(name: str) -> str:
    admin = Redis.from_url(SHARED_REDIS_URL)
    [connection] = [c for c in admin.client_list() if c["name"] == f"{name}-set"]
    return connection["cmd"]


def test_a_denial_reaches_every_process_and_lookups_need_no_request_to_redis():
    """RFC 7009 §2: the revocation takes effect at once in the process that made it, and in every
    other as soon as Redis delivers it; the lookups themselves are answered from the mirror."""
    prefix, first, other = f"test-{uuid.uuid4().hex}", f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    denying, looking = process(first, prefix), process(other, prefix)
    assert not looking.is_denied("jti-1")  # subscribes and reads the set: empty

    denying.deny("jti-1", int(time.time()) + 60)
    assert denying.is_denied("jti-1")
    wait_for(lambda: looking.is_denied("jti-1"), "the denial never reached the other process")
    assert not looking.is_denied("jti-2")
    assert looking.is_denied("jti-2", "jti-1")
    assert last_command(other) == "zrangebyscore"  # its snapshot of the set; no lookup since


def test_each_subscription_starts_from_the_whole_set():
    """Denials published while a process was not subscribed reach it through the set: read when it
    first subscribes, asked directly while it has no subscription, read again once it has one."""
    prefix, first, other = f"test-{uuid.uuid4().hex}", f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    clock = Clock(1000.0)
    denying = process(first, prefix)
    denying.deny("before-it-started", int(time.time()) + 60)
    looking = process(other, prefix, feed_clock=clock)
    assert looking.is_denied("before-it-started")

    break_subscription(other)
    denying.deny("while-unsubscribed", int(time.time()) + 60)
    assert looking.is_denied("while-unsubscribed")
    assert last_command(other) == "exists"  # asked Redis: no subscription to vouch for the mirror

    clock.now += RedisFeed.RESUBSCRIBE_SECONDS
    assert looking.is_denied("while-unsubscribed") and looking.is_denied("before-it-started")
    assert last_command(other) == "zrangebyscore"


def test_without_a_feed_every_lookup_asks_redis():
    prefix, first, other = f"test-{uuid.uuid4().hex}", f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    unreachable = RedisFeed(Redis.from_url("redis://127.0.0.1:9/0", socket_timeout=1, retry=Retry(NoBackoff(), 0)))
    denying, looking = process(first, prefix), process(other, prefix, feed=unreachable)
    denying.deny("jti-1", int(time.time()) + 60)

    assert looking.is_denied("jti-1") and not looking.is_denied("jti-2")
    assert last_command(other) == "exists"


def test_a_denial_lapses_when_the_token_would_have_expired():
    """In the mirror at its own time; in Redis, its key lapses then (EXAT)."""
    prefix, name = f"test-{uuid.uuid4().hex}", f"a-{uuid.uuid4().hex}"
    clock = Clock(time.time())
    denylist = process(name, prefix, clock=clock)
    expires_at = int(clock.now) + 60
    denylist.deny("jti-1", expires_at)
    assert denylist.redis.pexpiretime(f"{prefix}:denied-jti:jti-1") == expires_at * 1000

    clock.now = expires_at - 1
    assert denylist.is_denied("jti-1")
    clock.now = expires_at
    assert not denylist.is_denied("jti-1")
    assert last_command(name) == "zrangebyscore"  # the snapshot, then no request


def test_a_message_on_the_denials_channel_that_is_no_denial_makes_lookups_ask_redis():
    prefix, first, other = f"test-{uuid.uuid4().hex}", f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    denying, looking = process(first, prefix), process(other, prefix)
    assert not looking.is_denied("jti-1")  # mirrored
    denying.deny("jti-1", int(time.time()) + 60)
    Redis.from_url(SHARED_REDIS_URL).publish(looking.channel, "not a denial")

    wait_for(lambda: looking.is_denied("jti-1") and last_command(other) == "exists",
             "the mirror was still trusted after a message it could not read")


def test_denials_written_by_earlier_builds_are_indexed_once_and_seen_by_every_lookup():
    """Builds before the set wrote one key per denial: an upgrade must not bring their revoked tokens back."""
    prefix, name = f"test-{uuid.uuid4().hex}", f"a-{uuid.uuid4().hex}"
    shared, lapses = Redis.from_url(SHARED_REDIS_URL), int(time.time()) + 60
    shared.set(f"{prefix}:denied-jti:revoked-before", 1, exat=lapses)  # as an earlier build's deny() wrote it
    shared.set(f"{prefix}:denied-jti:org:before", 1, exat=lapses)
    shared.set(f"{prefix}:denied-jti:{CLAIM_PREFIX}issuer:jti", 1, exat=lapses)  # a claim, no denial

    upgraded = process(name, prefix)
    assert upgraded.is_denied("revoked-before") and upgraded.is_denied("jti", "org:before")
    assert last_command(name) == "zrangebyscore"  # from the mirror
    assert shared.zscore(upgraded.denied, "revoked-before") == lapses
    assert shared.zscore(upgraded.denied, f"{CLAIM_PREFIX}issuer:jti") is None

    # Indexed once: a key written later by an instance still on the earlier build is in no mirror,
    # not even one made afterwards; lookups that ask Redis see it.
    shared.set(f"{prefix}:denied-jti:revoked-during-the-rollout", 1, exat=lapses)
    later = process(f"b-{uuid.uuid4().hex}", prefix)
    assert not later.is_denied("revoked-during-the-rollout")
    without_feed = process(f"c-{uuid.uuid4().hex}", prefix, feed=RedisFeed(
        Redis.from_url("redis://127.0.0.1:9/0", socket_timeout=1, retry=Retry(NoBackoff(), 0))))
    assert without_feed.is_denied("revoked-during-the-rollout")


@pytest.mark.parametrize(("mirror", "sees_the_rollouts_denial"), [(True, False), (False, True)])
def test_during_a_rollout_from_an_earlier_build_the_mirror_is_turned_off(database_url, mirror,
                                                                        sees_the_rollouts_denial):
    """DENYLIST_MIRROR=false: an app that asks Redis on every lookup, so that it sees denials an
    instance of a build before the mirror writes (a key alone, nothing indexed or published)."""
    settings = make_settings(database_url, REDIS_URL=SHARED_REDIS_URL, DENYLIST_MIRROR=mirror)
    app = create_app(settings)
    denylist = app.extensions["gatehouse.stores"].denylist
    with app.app_context():  # where the app's lookups run: they may read the database's record
        assert not denylist.is_denied("x")  # with the mirror: subscribed, the set indexed and read
        Redis.from_url(SHARED_REDIS_URL).set(
            f"{settings.RATELIMIT_KEY_PREFIX}:denied-jti:revoked-on-an-earlier-build", 1, exat=int(time.time()) + 60)
        assert denylist.is_denied("revoked-on-an-earlier-build") is sees_the_rollouts_denial
        db.session.remove()
        db.engine.dispose()


def test_a_later_lapse_wins_over_an_earlier_one():
    """Denied twice (an organization deleted, then a token of it revoked): denied until the later
    lapse, in the process that denied and in one that reads the set afresh."""
    prefix, first, other = f"test-{uuid.uuid4().hex}", f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    now = time.time()
    clock = Clock(now)
    denying = process(first, prefix, clock=clock)
    assert not denying.is_denied("key")  # mirrored from here on
    denying.deny("key", int(now) + 600)
    denying.deny("key", int(now) + 60)

    clock.now = now + 120
    assert denying.is_denied("key")
    assert process(other, prefix, clock=clock).is_denied("key")


def test_a_denial_prunes_from_the_set_only_what_has_lapsed():
    """A process reading the set afresh (new, or after a reconnection) finds every denial still in force."""
    prefix, first, other = f"test-{uuid.uuid4().hex}", f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    denying = process(first, prefix)
    assert not denying.is_denied("x")  # the set indexed and read: fresh readers read only the set from now on
    now = int(time.time())
    denying.deny("lapses-soon", now + 3)
    denying.deny("lapses-later", now + 600)
    fresh = process(other, prefix)
    assert fresh.is_denied("lapses-soon") and fresh.is_denied("lapses-later")
    assert last_command(other) == "zrangebyscore"  # from its snapshot of the set


def test_lookups_from_the_mirror_send_nothing_to_redis():
    prefix, name = f"test-{uuid.uuid4().hex}", f"a-{uuid.uuid4().hex}"
    denylist = process(name, prefix)
    denylist.deny("jti-1", int(time.time()) + 60)
    assert denylist.is_denied("jti-1")  # subscribed and read the set
    admin = Redis.from_url(SHARED_REDIS_URL)
    # Close its connection from Redis's side: any command after this would open a new one under its name.
    [connection] = [c for c in admin.client_list() if c["name"] == f"{name}-set"]
    assert admin.client_kill_filter(_id=connection["id"]) == 1

    for _ in range(3):
        assert denylist.is_denied("jti-1") and not denylist.is_denied("jti-2")
    assert not [c for c in admin.client_list() if c["name"] == f"{name}-set"]


def test_the_denying_process_sees_its_own_denial_at_once():
    """Before its own feed brings the denial back (held here), the denying process refuses the token:
    a client that revokes and then introspects gets active: false."""
    prefix, name = f"test-{uuid.uuid4().hex}", f"a-{uuid.uuid4().hex}"
    network = RedisNetwork()
    denylist = process(name, prefix, feed=RedisFeed(network.redis(), clock=Clock()))
    assert not denylist.is_denied("jti-1")  # subscribed, the set read: the mirror is trusted
    network.flowing.clear()
    try:
        denylist.deny("jti-1", int(time.time()) + 60)
        assert denylist.is_denied("jti-1")
    finally:
        network.flowing.set()


def test_lapsed_denials_leave_the_set_and_the_mirror():
    """Denials are kept only until they lapse: the set every process reads, and each mirror, do not grow
    with every revocation ever made."""
    prefix, name = f"test-{uuid.uuid4().hex}", f"a-{uuid.uuid4().hex}"
    clock = Clock(time.time())
    denylist = process(name, prefix, clock=clock)
    assert not denylist.is_denied("x")  # mirrored from here on
    for n in range(100):
        denylist.deny(f"short-{n}", int(clock.now) + 60)
    clock.now += 120
    for n in range(100):
        denylist.deny(f"live-{n}", int(clock.now) + 60)

    assert sorted(denylist.redis.zrange(denylist.denied, 0, -1)) == sorted(f"live-{n}".encode() for n in range(100))
    # The mirror is swept each time it has doubled since the last sweep: the lapsed ones are gone.
    assert sorted(denylist._mirror) == sorted(f"live-{n}" for n in range(100))
