"""The token denylist: revoked access tokens and single-use identifiers (RFC 7009 §2, RFC 7523 §3)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from redis import Redis

from app.services.denylist import MemoryDenylist, RedisDenylist

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(params=["memory", "redis"])
def denylist(request):
    if request.param == "memory":
        return MemoryDenylist()
    return RedisDenylist(Redis.from_url(REDIS_URL), prefix=f"test-{uuid.uuid4().hex}")


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
