"""The protocol endpoints' client cache: clients by client_id, shared versions that say when a
copy is stale, and the session listener that tells it which clients a transaction changed.

No service calls the cache or marks anything changed: `track_client_changes` sees every client and
organization that any session flushes, or changes with an ORM UPDATE or DELETE statement, and
notes the client_ids in the session; once the transaction commits, the app hands them to
`ClientCache.invalidate` (app/__init__.py). A new way of changing a client cannot forget it. Only
SQL that bypasses the ORM (text(), statements on the bare tables) goes unseen, for the cache's ttl
at most.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import JSON, event, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session, make_transient_to_detached, scoped_session
from sqlalchemy.orm.util import identity_key

from app.models import OAuthClient, Organization
from app.stores.redis_feed import RedisFeed

log = logging.getLogger(__name__)

# Session.info key: the client_ids whose rows the session's open transaction changed. Present and
# empty when it added clients by a bulk INSERT, whose ids it does not know: the registry changed.
CHANGED_CLIENTS_KEY = "gatehouse.changed_client_ids"
# What an organization's clients' cached entries hold of it: the organization claims of their own tokens.
_CLAIMED_ORGANIZATION_FIELDS = ("name", "slug")


# --- Which clients a transaction changed ---------------------------------------------

def track_client_changes() -> None:
    """Note in every session the clients its transaction changes (once per process)."""
    if not event.contains(Session, "before_flush", _note_flushed_changes):
        event.listen(Session, "before_flush", _note_flushed_changes)
        event.listen(Session, "do_orm_execute", _note_statement_changes)
        event.listen(Session, "after_rollback", _forget_changes)


def take_changed_clients(session: Session) -> set[str] | None:
    """After a commit: the client_ids the committed transaction changed (None: nothing changed).
    A savepoint's release is no commit: its changes wait for the transaction's."""
    if session.in_nested_transaction():
        return None
    return session.info.pop(CHANGED_CLIENTS_KEY, None)


def _note(session: Session, client_ids: Iterable[str]) -> None:
    session.info.setdefault(CHANGED_CLIENTS_KEY, set()).update(client_ids)


def _forget_changes(session: Session) -> None:
    # A savepoint rolled back leaves the transaction's earlier changes to commit: kept (an extra
    # invalidation costs one read).
    if not session.in_nested_transaction():
        session.info.pop(CHANGED_CLIENTS_KEY, None)


def _note_flushed_changes(session: Session, _flush_context, _instances) -> None:
    changed_clients, organization_ids = [], []
    for instance in (*session.new, *session.deleted):
        if isinstance(instance, OAuthClient):
            changed_clients.append(instance.client_id)
        elif isinstance(instance, Organization) and inspect(instance).persistent:  # a new one has no clients
            organization_ids.append(instance.id)
    for instance in session.dirty:
        if isinstance(instance, OAuthClient) and session.is_modified(instance):
            changed_clients.append(instance.client_id)
        elif isinstance(instance, Organization) and any(inspect(instance).attrs[field].history.has_changes()
                                                        for field in _CLAIMED_ORGANIZATION_FIELDS):
            organization_ids.append(instance.id)
    if organization_ids:
        # Read before the flush: a deleted organization's clients go with it (ON DELETE CASCADE).
        changed_clients += _clients_of(session, organization_ids)
    if changed_clients:
        _note(session, changed_clients)


def _note_statement_changes(state: ORMExecuteState) -> None:
    """ORM UPDATE and DELETE statements (`session.execute(update(OAuthClient)...)`), which no flush sees."""
    if not (state.is_update or state.is_delete or state.is_insert) or state.bind_mapper is None:
        return
    model = state.bind_mapper.class_
    if model is OAuthClient:
        if state.is_insert:
            _note(state.session, ())
        else:
            _note(state.session, state.session.scalars(select(OAuthClient.client_id)
                                                       .where(*_criteria(state))))
    elif model is Organization and not state.is_insert:
        organization_ids = list(state.session.scalars(select(Organization.id).where(*_criteria(state))))
        if organization_ids:
            _note(state.session, _clients_of(state.session, organization_ids))


def _criteria(state: ORMExecuteState) -> tuple:
    """The WHERE clause of an UPDATE or DELETE statement, as arguments of Select.where()."""
    where = state.statement.whereclause
    return () if where is None else (where,)


def _clients_of(session: Session, organization_ids: list[uuid.UUID]) -> list[str]:
    return list(session.scalars(select(OAuthClient.client_id).where(OAuthClient.organization_id.in_(organization_ids))))


# --- Client versions: when a cached copy is stale --------------------------------------

class ClientVersions(Protocol):
    def current(self, client_id: str) -> Hashable | None:
        """The client's version, changed by every committed change; None when it cannot be known."""

    def registry(self) -> Hashable | None:
        """The version of the whole registry, changed by every committed change to any client
        (creation included); None when it cannot be known."""

    def bump(self, client_ids: Iterable[str]) -> None: ...


class MemoryClientVersions:
    """For a single process (development, tests without Redis)."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._changes = 0
        self._lock = threading.Lock()

    def current(self, client_id: str) -> int | None:
        return self._versions.get(client_id, 0)

    def registry(self) -> int | None:
        return self._changes

    def bump(self, client_ids: Iterable[str]) -> None:
        with self._lock:
            self._changes += 1
            for client_id in client_ids:
                self._versions[client_id] = self._versions.get(client_id, 0) + 1


class RedisClientVersions:
    """Client versions shared by every process and instance through Redis pub/sub, read
    without a round trip to Redis (stores.redis_feed).

    bump() publishes the changed client_ids on one channel once their transaction has
    committed. Every process counts, on its feed, the changes of each client.

    A version is (subscription, count). Each confirmed subscription starts a new count, so
    nothing cached under an earlier one is trusted again: changes published while a process
    was not subscribed cannot be missed. While the feed cannot vouch for itself current() is
    None and the cache asks the database. A bump lost because Redis failed right after the
    commit is bounded by the cache's ttl.
    """

    def __init__(self, redis: Redis, prefix: str, feed: RedisFeed) -> None:
        self.redis = redis
        self.channel = f"{prefix}:client-changes"
        self._feed = feed
        self._counted = _Counts(0)  # replaced whole on each subscription: readers see one consistent count
        feed.listen(self.channel, self._take_in, self._subscribed)

    def current(self, client_id: str) -> tuple[int, int] | None:
        subscription, counted = self._feed.live(), self._counted
        if not subscription or counted.subscription != subscription:
            return None
        return subscription, counted.per_client.get(client_id, 0)

    def registry(self) -> tuple[int, int] | None:
        subscription, counted = self._feed.live(), self._counted
        if not subscription or counted.subscription != subscription:
            return None
        return subscription, counted.changes

    def _subscribed(self, subscription: int) -> None:
        self._counted = _Counts(subscription)

    def _take_in(self, data: bytes) -> None:
        counted = self._counted
        counted.changes += 1
        for client_id in data.decode().split():
            counted.per_client[client_id] = counted.per_client.get(client_id, 0) + 1

    def bump(self, client_ids: Iterable[str]) -> None:
        try:
            self.redis.publish(self.channel, " ".join(sorted(client_ids)))
        except RedisError as err:
            log.error("could not publish a client change (%s); other processes may use the previous "
                      "settings of %s until CLIENT_CACHE_SECONDS pass", err, ", ".join(sorted(client_ids)))


@dataclass
class _Counts:
    """The changes counted on one subscription (the feed calls _take_in under its lock)."""
    subscription: int
    changes: int = 0
    per_client: dict[str, int] = dataclasses.field(default_factory=dict)


# --- The cache ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    values: Any  # a client's column values (each hit gets copies), or the CORS origins (a frozenset)
    version: Hashable
    expires_at: float


def _column_values(client: OAuthClient) -> dict[str, Any]:
    return {attr.key: copy.deepcopy(getattr(client, attr.key)) for attr in inspect(OAuthClient).column_attrs}


class ClientCache:
    """Clients by client_id for the protocol endpoints, which authenticate one on every request;
    with them the organization claims of their own tokens, and the CORS origins of all of them.

    `load_client(db, client_id)` and `load_origins(db)` read them from the database (the services'
    get_client and all_cors_origins). A hit costs one version read (in memory: see
    RedisClientVersions) instead of a query, a pool checkout with its ping, and a commit round
    trip. Every committed change to a client, or to its organization's name or slug, bumps its
    version (`track_client_changes`), so every process and instance sharing the Redis sees a
    change on its next lookup after Redis delivers it (microseconds on one network): a rotated
    secret stops working everywhere. Only SQL written by hand, or a bump lost because Redis failed
    right after the commit, can go unseen, for `ttl` seconds at most. If the version cannot be
    known, the database is asked. Unknown client_ids are not cached.

    A hit returns the instance the caller's session already holds, if it holds this client;
    otherwise a new, detached OAuthClient with every column loaded, which no other request
    sees. Detached, so that a hit opens no session (a client-credentials token or an
    introspection then runs without one), and a commit has no instance to expire and reload.
    Nothing stores a client through a relationship (rows take `client.id`), and a detached copy
    that is added to a session joins it as persistent, unmodified.
    Safe to share between threads. ttl <= 0: no caching.
    """

    def __init__(self, versions: ClientVersions, *, ttl: float,
                 load_client: Callable[[Session, str], OAuthClient | None],
                 load_origins: Callable[[Session], Iterable[str]], max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.versions = versions
        self.ttl = ttl
        self.max_entries = max_entries
        self._load_client = load_client
        self._load_origins = load_origins
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._claims: dict[str, _Entry] = {}
        self._origins: _Entry | None = None
        self._lock = threading.Lock()

    def client_claims(self, db: Session, client: OAuthClient,
                      load: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        """`load(db, client=client)`: the organization claims of a token issued to the client itself, kept
        under the client's version (a new name or slug of its organization moves it; deleting the
        organization deletes its clients)."""
        if client.organization_id is None:  # a platform client's tokens have none: nothing to read or keep
            return load(db, client=client)
        version = self.versions.current(client.client_id) if self.ttl > 0 else None
        if version is None or _changes_pending(db):
            return load(db, client=client)
        cached = self._claims.get(client.client_id)
        if self._fresh(cached, version):
            return dict(cached.values)
        claims = load(db, client=client)
        self._keep(self._claims, client.client_id, _Entry(dict(claims), version, self._clock() + self.ttl))
        return claims

    def cors_origins(self, db: Session) -> frozenset[str]:
        """`load_origins`, read again only once a client has changed (or `ttl` has passed):
        every CORS request asks, and the answer takes a scan of every client's redirect URIs."""
        version = self.versions.registry() if self.ttl > 0 else None
        # A transaction that changed a client sees its change, and keeps it out of the cache: it may roll back.
        if version is None or _changes_pending(db):
            return frozenset(self._load_origins(db))
        cached = self._origins
        if self._fresh(cached, version):
            return cached.values
        origins = frozenset(self._load_origins(db))
        self._origins = _Entry(origins, version, self._clock() + self.ttl)
        return origins

    def last_cors_origins(self) -> frozenset[str]:
        """What `cors_origins` last read and kept, fresh or not (nothing if it never kept any): for an
        answer made while the database cannot be asked."""
        cached = self._origins
        return cached.values if cached is not None else frozenset()

    def get(self, db: Session, client_id: str) -> OAuthClient | None:
        """The client with this client_id, or None: `load_client`, usually without a query."""
        if self.ttl <= 0:
            return self._load_client(db, client_id)
        version = self.versions.current(client_id)
        if version is None:
            return self._load_client(db, client_id)
        entry = self._entries.get(client_id)
        if self._fresh(entry, version):
            return _held(db, entry.values["id"]) or _detached_copy(entry.values)
        client = self._load_client(db, client_id)
        # Not what this very transaction changed: it may yet roll back.
        if client is not None and client_id not in _changed_in(db):
            self._keep(self._entries, client_id, _Entry(_column_values(client), version, self._clock() + self.ttl))
        else:
            self._entries.pop(client_id, None)
        return client

    def _fresh(self, entry: _Entry | None, version: Hashable) -> bool:
        """Whether `entry` may be used: kept under the current version, and within its ttl."""
        return entry is not None and entry.version == version and self._clock() < entry.expires_at

    def _keep(self, entries: dict[str, _Entry], client_id: str, entry: _Entry) -> None:
        with self._lock:
            if client_id not in entries and len(entries) >= self.max_entries:
                entries.pop(next(iter(entries)))
            entries[client_id] = entry

    def invalidate(self, client_ids: Iterable[str]) -> None:
        """Forget these clients here, and make every other process re-read them. Call after the commit."""
        client_ids = set(client_ids)
        with self._lock:
            for client_id in client_ids:
                self._entries.pop(client_id, None)
                self._claims.pop(client_id, None)
            self._origins = None
        self.versions.bump(client_ids)


def _opened(db: Session | scoped_session) -> bool:
    """Whether `db` is a session, or a scoped session whose session exists (reading it would open one)."""
    return not isinstance(db, scoped_session) or db.registry.has()


def _held(db: Session | scoped_session, client_pk: uuid.UUID) -> OAuthClient | None:
    """The session's own instance of this client, without opening a session that does not exist yet."""
    return db.identity_map.get(identity_key(OAuthClient, client_pk)) if _opened(db) else None


def _changed_in(db: Session | scoped_session) -> set[str]:
    """The client_ids the session's open transaction changed, without opening a session."""
    return db.info.get(CHANGED_CLIENTS_KEY, set()) if _opened(db) else set()


def _changes_pending(db: Session | scoped_session) -> bool:
    """Whether the session's open transaction changed any client, without opening a session."""
    return _opened(db) and CHANGED_CLIENTS_KEY in db.info


def _detached_copy(values: dict[str, Any]) -> OAuthClient:
    """A detached OAuthClient with these column values, as if loaded and its session closed."""
    client = _CLIENT_MANAGER.new_instance()
    # Set as the ORM's loader sets them (no change events), with copies of the mutable values (the
    # JSON columns: lists of strings, the jwks object), so a request cannot change the entry.
    client.__dict__.update(values)
    for key in _JSON_COLUMNS:
        value = values[key]
        if value is not None:
            client.__dict__[key] = value[:] if isinstance(value, list) else copy.deepcopy(value)
    make_transient_to_detached(client)
    return client


_CLIENT_MANAGER = inspect(OAuthClient).class_manager
_JSON_COLUMNS = tuple(attr.key for attr in inspect(OAuthClient).column_attrs if isinstance(attr.columns[0].type, JSON))
