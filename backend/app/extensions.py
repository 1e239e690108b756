"""Unbound extension singletons, bound to an app in `create_app`."""

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from flask import current_app, request
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from limits import parse as parse_limit
from limits.strategies import FixedWindowRateLimiter, RateLimiter
from redis.exceptions import RedisError

from app import errors
from app.config import Settings
from app.federation.dns import TxtResolver
from app.federation.http import GuardedFetcher
from app.federation.metadata import UpstreamMetadata
from app.models.base import Base
from app.security.crypto import FieldCipher
from app.security.client_ip import client_ip
from app.services.keys import KeyStore
from app.stores import Stores
from app.stores.client_cache import ClientCache
from app.stores.denylist import TokenDenylist
from app.stores.keysets import PrivateKeySets, VerifiedTokens
from app.stores.saml_replay import AssertionReplayCache

log = logging.getLogger(__name__)
T = TypeVar("T")


def rate_limit_key() -> str:
    """The client IP, namespaced by the handling app's RATELIMIT_KEY_PREFIX.

    The prefix is read per request rather than passed as Flask-Limiter's
    RATELIMIT_KEY_PREFIX: the module-level Limiter keeps the prefix of the
    first app it was bound to and ignores every later app's.
    """
    return f"{current_settings().RATELIMIT_KEY_PREFIX}/{client_ip()}"


def address_rate_limit_key() -> str:
    """The email address a form or JSON body names (as stored: trimmed, lower-cased), as an HMAC
    under SECRET_KEY so that the rate-limit store holds no address; namespaced as rate_limit_key."""
    body = request.get_json(silent=True) if request.is_json else request.form
    email = body.get("email") if hasattr(body, "get") else None
    email = email.strip().lower() if isinstance(email, str) else ""
    settings = current_settings()
    digest = hmac.new(settings.SECRET_KEY.encode(), email.encode(), hashlib.sha256).hexdigest()
    return f"{settings.RATELIMIT_KEY_PREFIX}/address/{digest}"


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
# CSRF is checked explicitly by the HTML form handlers (WTF_CSRF_CHECK_DEFAULT=False):
# protocol and API endpoints authenticate with tokens, not cookies.
csrf = CSRFProtect()
# Limits are declared per route; storage comes from RATELIMIT_STORAGE_URI at init.
# No X-RateLimit headers: Flask-Limiter would add Retry-After to every response of a
# limited route (200, 401, 413 …), and HTTP clients honour it; the 429 handler in
# api/envelope.py sets Retry-After itself. If Redis is unreachable, limits fall back
# to per-process memory rather than failing every sign-in with a 500.
limiter = Limiter(key_func=rate_limit_key, headers_enabled=False, in_memory_fallback_enabled=True)
# The budget of refused API keys per client IP (RATELIMIT_API_KEY_FAILURES), in the limiter's storage:
# checked and spent where a key is authenticated (api/context.py), so no other request pays for it.
API_KEY_FAILURES = "api-key-failures"


def _on_api_key_failure_budget(use: Callable[[RateLimiter], T]) -> T:
    """`use` a fixed window (Flask-Limiter's strategy) on the limiter's own storage; while its Redis cannot
    answer, the process's own counts (the stores' memory_rate_limits), as Flask-Limiter's route checks
    fall back, which this budget, checked outside them, does not reach. Not `limiter.limiter`: that turns
    to Flask-Limiter's own memory only once a route check found Redis down, and one outage's refused
    keys would be counted in two places."""
    try:
        return use(FixedWindowRateLimiter(limiter.storage))
    except RedisError as error:
        log.warning("rate-limit storage unavailable (%s): API key failures counted in this process",
                    type(error).__name__)
        return use(stores().memory_rate_limits)


def refuse_when_api_key_failures_spent() -> None:
    """Raise TooManyRequests (with Retry-After) once this client IP's refused keys spent the budget."""
    limit, key = parse_limit(current_settings().RATELIMIT_API_KEY_FAILURES), rate_limit_key()
    if not _on_api_key_failure_budget(lambda strategy: strategy.test(limit, API_KEY_FAILURES, key)):
        window = _on_api_key_failure_budget(lambda strategy: strategy.get_window_stats(limit, API_KEY_FAILURES, key))
        raise errors.TooManyRequests(headers={"Retry-After": str(max(1, int(window.reset_time - time.time())))})


def spend_api_key_failure() -> None:
    """Count one refused key of this client IP against RATELIMIT_API_KEY_FAILURES."""
    limit, key = parse_limit(current_settings().RATELIMIT_API_KEY_FAILURES), rate_limit_key()
    _on_api_key_failure_budget(lambda strategy: strategy.hit(limit, API_KEY_FAILURES, key))


def account_mail_limits(view):
    """The limits of a request that emails an account link: per client IP and per address typed,
    each one budget that the pages and the API share."""
    view = limiter.shared_limit(lambda: current_settings().RATELIMIT_ACCOUNT_MAIL_PER_ADDRESS,
                                scope="account-mail-address", key_func=address_rate_limit_key)(view)
    return limiter.shared_limit(lambda: current_settings().RATELIMIT_ACCOUNT_MAIL, scope="account-mail")(view)


def stores() -> Stores:
    """The process-wide stores of the app handling this request or CLI command (app/stores)."""
    return current_app.extensions["gatehouse.stores"]


def current_settings() -> Settings:
    """The Settings of the app handling this request or CLI command."""
    return current_app.extensions["gatehouse.settings"]


def key_store() -> KeyStore:
    """The signing keyring of the app handling this request or CLI command."""
    return current_app.extensions["gatehouse.keys"]


def client_cache() -> ClientCache:
    """The client cache of the app handling this request (stores/client_cache.py)."""
    return stores().client_cache


def token_denylist() -> TokenDenylist:
    """Revoked token ids of the app handling this request (Redis when configured)."""
    return stores().denylist


def private_keysets() -> PrivateKeySets:
    """The signing keys of the app handling this request, parsed once."""
    return stores().private_keysets


def verified_tokens() -> VerifiedTokens:
    """The access tokens the app handling this request has verified."""
    return stores().verified_tokens


def saml_replay_cache() -> AssertionReplayCache:
    """The SAML assertion replay cache of the app handling this request (Redis when configured, else the database)."""
    return stores().saml_replay_cache


def field_cipher() -> FieldCipher:
    """The cipher of stored secrets that must be read back (ENCRYPTION_KEYS)."""
    return current_app.extensions["gatehouse.field_cipher"]


def upstream_fetcher() -> GuardedFetcher:
    """The SSRF-guarded fetcher of upstream identity providers' URLs."""
    return current_app.extensions["gatehouse.upstream_fetcher"]


def dns_resolver() -> TxtResolver:
    """The resolver of organizations' domain-verification TXT records (DNS_RESOLVER)."""
    return current_app.extensions["gatehouse.dns"]


def upstream_metadata() -> UpstreamMetadata:
    """The cache of upstream providers' discovery documents and key sets."""
    return current_app.extensions["gatehouse.upstream_metadata"]
