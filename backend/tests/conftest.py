"""Test fixtures.

The schema is built once per run with the real migrations (`flask db upgrade`)
on SQLite by default, or on PostgreSQL when DATABASE_URL is set; REDIS_URL, when
set, puts rate limits in Redis. Each test gets a fresh app; afterwards every
table is emptied. Truncation rather than a rolled-back outer transaction,
because requests, live servers and the concurrency tests commit on their own
connections and must see each other's commits.

Tests never hold an app context while calling the app: Flask would reuse it for
the request and share one SQLAlchemy session between test and view. Tests use
`db_session`, a separate Session on the same engine.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import MetaData, create_engine, delete, event
from sqlalchemy.orm import Session

from app import create_app
from app.config import Settings
from app.extensions import db
from app.models import Base
from app.stores.redis_feed import RedisFeed
from tests import factories
from tests.upstream import UpstreamServer

TEST_SECRET_KEY = "test-secret-key-" + "x" * 32
# The Fernet key of test apps (production mode refuses to start without ENCRYPTION_KEYS).
TEST_ENCRYPTION_KEY = "dGVzdC1lbmNyeXB0aW9uLWtleS0tLS0tLS0tLS0tLS0="


@functools.cache
def signing_keys_dir() -> str:
    """One signing-key directory per run, never the repo's keys/: RSA keys are generated once."""
    path = tempfile.mkdtemp(prefix="gatehouse-test-keys-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    # Start from an empty database so the migrations, not leftovers, make the schema.
    engine = create_engine(url)
    existing = MetaData()
    existing.reflect(engine)
    existing.drop_all(engine)
    engine.dispose()
    app = create_app(Settings(ENV="testing", SECRET_KEY=TEST_SECRET_KEY, DATABASE_URL=url,
                              SIGNING_KEYS_DIR=signing_keys_dir()))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return url


@functools.cache
def mail_outbox_dir() -> str:
    """One mail outbox per run, never backend/instance/outbox; tests that read mail set their own."""
    path = tempfile.mkdtemp(prefix="gatehouse-test-outbox-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@contextlib.contextmanager
def count_sql(engine) -> Iterator[list[str]]:
    """The SQL statements `engine` runs while the block runs."""
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


class Clock:
    """A clock that stands still until a test moves it (`clock.now += seconds`)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# Tests of what processes share through Redis use this one whichever stores the suite runs on:
# this machine and CI always run Redis.
SHARED_REDIS_URL = "redis://127.0.0.1:6379/15"


def shared_feed(name: str, clock: Callable[[], float] | None = None) -> RedisFeed:
    """A process's feed as create_app makes it; its connection is named, so that a test can find
    (and break) this feed's own subscription."""
    redis = Redis.from_url(SHARED_REDIS_URL, socket_timeout=2, retry=Retry(NoBackoff(), 0), client_name=name)
    return RedisFeed(redis, **({"clock": clock} if clock else {}))


def break_subscription(name: str) -> None:
    """Close the subscription of shared_feed(name) from Redis's side, as a network failure would."""
    admin = Redis.from_url(SHARED_REDIS_URL)
    # Only this test's subscription: other processes' connections to this Redis are left alone.
    [subscription] = [c for c in admin.client_list(_type="pubsub") if c["name"] == name]
    assert admin.client_kill_filter(_id=subscription["id"]) == 1


def released_together(app: Flask, requests: list[Callable[[Any], Any]]) -> list[Any]:
    """Each of `requests` (called with a test client of its own, so its own app context, database
    session and connection) in a thread of its own, all released at once; their answers, in order.
    An exception in a thread fails the calling test."""
    barrier = threading.Barrier(len(requests))
    answers: list[Any] = [None] * len(requests)
    failures: list[BaseException] = []

    def send(index: int) -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=10)
            answers[index] = requests[index](client)
        except BaseException as exc:  # surfaced in the calling thread below
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert all(answer is not None for answer in answers)
    return answers


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 2) -> None:
    """Until `condition()` holds (something another process or thread delivers); fails with `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what


class RedisNetwork:
    """A TCP proxy in front of the shared Redis, for what a real network may do to Redis's replies:
    hand them on `piece` bytes at a time, 2 ms apart (a message then arrives in several segments),
    or hold them back while `flowing` is cleared."""

    def __init__(self, piece: int | None = None) -> None:
        self.piece = piece
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = SHARED_REDIS_URL.replace(":6379/", f":{self.listener.getsockname()[1]}/")
        threading.Thread(target=self._accept, daemon=True).start()

    def redis(self, **options: Any) -> Redis:
        """A client through this network, as a feed's: no retries."""
        return Redis.from_url(self.url, socket_timeout=2, retry=Retry(NoBackoff(), 0), **options)

    def _accept(self) -> None:
        while True:
            downstream, _ = self.listener.accept()
            upstream = socket.create_connection(("127.0.0.1", 6379))
            for connection in (downstream, upstream):
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pipe, args=(downstream, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, downstream, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        piece = self.piece if replies else None
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if replies:
                    self.flowing.wait()
                for start in range(0, len(data), piece or len(data)):
                    sink.sendall(data[start:start + (piece or len(data))])
                    if piece:
                        time.sleep(0.002)
        for connection in (source, sink):
            with contextlib.suppress(OSError):
                connection.close()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings: fast bcrypt, a rate-limit namespace of its own, Redis when REDIS_URL is set."""
    values: dict[str, Any] = dict(
        ENV="testing", SECRET_KEY=TEST_SECRET_KEY, DATABASE_URL=database_url,
        REDIS_URL=os.environ.get("REDIS_URL") or None, BCRYPT_ROUNDS=4,
        RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}", SIGNING_KEYS_DIR=signing_keys_dir(),
        MAIL_OUTBOX_DIR=mail_outbox_dir(), ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def app(settings: Settings) -> Flask:
    app = create_app(settings)
    yield app
    with app.app_context():
        with db.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(delete(table))
        db.engine.dispose()


@pytest.fixture
def db_session(app: Flask) -> Session:
    with app.app_context():
        engine = db.engine
    session = Session(engine)
    factories.bind(session)
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@dataclass
class ApiResponse:
    status: int
    body: dict[str, Any]
    headers: Any

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def error_type(self) -> str | None:
        return (self.body.get("error") or {}).get("type")


class Api:
    """Calls the API and returns the parsed envelope, checking its shape every time."""

    def __init__(self, client, db_session: Session) -> None:
        self.client = client
        self.db_session = db_session

    def request(self, method: str, path: str, *, token: str | None = None, json: Any = None,
                headers: dict[str, str] | None = None, **kwargs: Any) -> ApiResponse:
        # End the test's own transaction: commit its setup, release SQLite's
        # write lock, and read fresh rows afterwards.
        self.db_session.commit()
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.open(path, method=method, json=json, headers=headers, **kwargs)
        body = response.get_json(silent=True)
        assert body is not None, f"{method} {path} returned a non-JSON body: {response.data[:200]!r}"
        assert_envelope(body, response.status_code, response.headers)
        return ApiResponse(response.status_code, body, response.headers)

    def get(self, path: str, **kw: Any) -> ApiResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> ApiResponse:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> ApiResponse:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> ApiResponse:
        return self.request("DELETE", path, **kw)


def assert_envelope(body: dict[str, Any], status: int, headers: Any) -> None:
    """The DESIGN.md envelope: the same keys for every /api response."""
    assert body["version"] == "1.0"
    assert body["code"] == status
    assert body["success"] is (status < 400)
    assert isinstance(body["message"], str) and body["message"]
    assert body["request_id"] == headers["X-Request-ID"]
    if status < 400:
        assert "data" in body and "meta" in body and "error" not in body
    else:
        assert set(body["error"]) == {"type", "details"}
        assert isinstance(body["error"]["details"], dict)


@pytest.fixture
def api(client, db_session: Session) -> Api:
    return Api(client, db_session)


@pytest.fixture
def user(db_session: Session):
    return factories.UserFactory()


@pytest.fixture
def login(api: Api):
    """Sign a user in through the API; returns the session token."""
    def sign_in(user, password: str = factories.DEFAULT_PASSWORD) -> str:
        response = api.post("/api/v1/auth/login", json={"email": user.email, "password": password})
        assert response.status == 200, response.body
        return response.data["token"]
    return sign_in


# --- one organization with a member of each built-in role ---

@pytest.fixture
def owner(db_session: Session):
    return factories.UserFactory(email="owner@example.com", name="Olive Owner")


@pytest.fixture
def org(db_session: Session, owner):
    """The organization "acme" (Acme Corp), owned by `owner`."""
    return factories.create_organization(db_session, owner=owner, slug="acme", name="Acme Corp")


@pytest.fixture
def admin(db_session: Session, org):
    user = factories.UserFactory(email="admin@example.com", name="Ada Admin")
    factories.add_member(db_session, org, user, "admin")
    return user


@pytest.fixture
def member(db_session: Session, org):
    user = factories.UserFactory(email="member@example.com", name="Max Member")
    factories.add_member(db_session, org, user, "member")
    return user


@pytest.fixture
def owner_token(owner) -> str:
    """An API session token of `owner`."""
    return factories.session_token(owner)


@pytest.fixture
def upstream():
    """A real HTTP server on a free loopback port, standing in for an upstream identity provider."""
    server = UpstreamServer()
    yield server
    server.close()
