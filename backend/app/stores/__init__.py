"""Process-wide infrastructure with one home: what a process keeps between requests.

Built once per app by `build_stores` and kept on it (create_app: app.extensions["gatehouse.stores"]);
nothing here is a module global. Services never reach for a store: the edge passes the one a
service needs as an argument (a denylist, the verified tokens, a Redis probe).

- redis_feed: one Redis pub/sub subscription per process, read without a round trip;
- denylist: revoked access tokens (Redis with a per-process mirror, or in-process);
- client_cache: the protocol endpoints' clients, their versions and the listener that sees changes;
- keysets: signing keys parsed once, and the access tokens they have verified;
- saml_replay: the SAML assertions accepted so far (Redis, or the database);
- memory_rate_limits: where a limit checked outside Flask-Limiter's hooks counts while its Redis is down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, RateLimiter
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import OAuthClient
from app.stores.client_cache import ClientCache, MemoryClientVersions, RedisClientVersions
from app.stores.denylist import DenialRecord, MemoryDenylist, RedisDenylist, TokenDenylist
from app.stores.keysets import PrivateKeySets, VerifiedTokens
from app.stores.redis_feed import RedisFeed
from app.stores.saml_replay import AssertionReplayCache, DatabaseAssertionReplayCache, RedisAssertionReplayCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stores:
    redis: Redis | None  # None without REDIS_URL: every store is then in-process
    denylist: TokenDenylist
    client_cache: ClientCache
    private_keysets: PrivateKeySets
    verified_tokens: VerifiedTokens
    saml_replay_cache: AssertionReplayCache
    memory_rate_limits: RateLimiter

    def redis_answers(self) -> bool | None:
        """Whether Redis answers a PING; None when no Redis is configured."""
        if self.redis is None:
            return None
        try:
            return bool(self.redis.ping())
        except RedisError:
            log.exception("health check: redis unavailable")
            return False


def build_stores(settings: Settings, *, denial_record: DenialRecord,
                 load_client: Callable[[Session, str], OAuthClient | None],
                 load_origins: Callable[[Session], Iterable[str]], current_session: Callable[[], Session]) -> Stores:
    """The stores of one app: shared through Redis when it is configured, with one feed telling
    each process of denials and client changes; in-process otherwise (the SAML replay cache: in the
    database, through `current_session`, the request's session). `denial_record` (the database's
    record of denials) restores the denylist; `load_client` and `load_origins` fill the client cache."""
    if settings.REDIS_URL:
        redis = Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        # The subscription's own client: no retries, so a broken connection shows (RedisFeed).
        feed = RedisFeed(Redis.from_url(settings.REDIS_URL, socket_timeout=2, retry=Retry(NoBackoff(), 0)))
        denylist = RedisDenylist(redis, prefix=settings.RATELIMIT_KEY_PREFIX,
                                 feed=feed if settings.DENYLIST_MIRROR else None, record=denial_record)
        versions = RedisClientVersions(redis, settings.RATELIMIT_KEY_PREFIX, feed)
        saml_replay_cache = RedisAssertionReplayCache(redis, settings.RATELIMIT_KEY_PREFIX)
    else:
        redis, denylist, versions = None, MemoryDenylist(denial_record), MemoryClientVersions()
        saml_replay_cache = DatabaseAssertionReplayCache(current_session)
    cache = ClientCache(versions, ttl=settings.client_cache_seconds, load_client=load_client,
                        load_origins=load_origins)
    return Stores(redis=redis, denylist=denylist, client_cache=cache, private_keysets=PrivateKeySets(),
                  verified_tokens=VerifiedTokens(), saml_replay_cache=saml_replay_cache,
                  memory_rate_limits=FixedWindowRateLimiter(MemoryStorage()))
