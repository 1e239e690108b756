"""A live Gatehouse on a loopback port, and the users and clients that talk to it.

Everything here is function-scoped, so it follows the root conftest's life cycle:

    settings (overridden here: ISSUER = the live base URL)
      -> app (root conftest; truncates every table after the test)
        -> live_server (serves that app on its own threads; stopped before app's teardown)
        -> live_user / web_client / spa_client / machine_client (committed rows)

The server socket is bound (port 0: the kernel picks a free port) before the
settings are built, so ISSUER names the port the server really listens on and
no other process can take it in between. The server threads open their own
database connections, so the rows they need are committed by the fixtures
below, in sessions that are closed before the test starts; the app fixture's
truncation removes them afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, make_server

from app import create_app
from app.config import Settings
from app.extensions import db
from app.services import clients, users
from app.services.actor import Actor
from tests.conftest import make_settings

HOST = "127.0.0.1"
USER_PASSWORD = "correct horse battery staple"
USER_SCOPES = ["openid", "profile", "email", "offline_access"]
MACHINE_SCOPES = ["invoices:read", "invoices:write"]


def _not_ready(environ, start_response):
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"the app is not attached yet"]


@pytest.fixture
def _live_socket() -> Iterator[BaseWSGIServer]:
    """The live server, bound but not serving; its app is attached by `live_server`."""
    server = make_server(HOST, 0, _not_ready, threaded=True)
    yield server
    server.server_close()


@pytest.fixture
def settings(database_url: str, _live_socket: BaseWSGIServer) -> Settings:
    """The root `settings`, with the issuer the live server is reachable at."""
    return make_settings(database_url, ISSUER=f"http://{HOST}:{_live_socket.port}")


@pytest.fixture
def live_server(app: Flask, _live_socket: BaseWSGIServer) -> Iterator[str]:
    """The test's app served by werkzeug on a free loopback port; yields its base URL (== ISSUER)."""
    _live_socket.app = app
    thread = threading.Thread(target=_live_socket.serve_forever, kwargs={"poll_interval": 0.05},
                              name="gatehouse-live-server", daemon=True)
    thread.start()
    try:
        yield app.extensions["gatehouse.settings"].ISSUER
    finally:
        _live_socket.shutdown()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the live server did not stop"


@contextmanager
def second_gatehouse(tmp_path: Path) -> Iterator[tuple[str, Flask]]:
    """Another Gatehouse, serving on a free loopback port with its own SQLite database and signing keys: a
    real OpenID provider upstream of the live one. Yields its issuer and app. It is served at
    http://localhost:<port> and the live one at http://127.0.0.1:<port>: cookies do not tell ports apart
    (RFC 6265 §8.5), so two hosts keep a browser's two sessions apart."""
    socket = make_server(HOST, 0, _not_ready, threaded=True)
    issuer = f"http://localhost:{socket.port}"
    keys = tmp_path / "second-gatehouse-keys"
    keys.mkdir()
    second = create_app(make_settings(f"sqlite:///{tmp_path / 'second-gatehouse.db'}", ISSUER=issuer,
                                      SIGNING_KEYS_DIR=str(keys), RATELIMIT_LOGIN="1000 per minute"))
    with second.app_context():
        upgrade()
    socket.app = second
    thread = threading.Thread(target=socket.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield issuer, second
    finally:
        socket.shutdown()
        thread.join(timeout=10)
        socket.server_close()
        with second.app_context():
            db.engine.dispose()


# --- the client's side: where the browser is sent back to ---

@dataclass
class RedirectTarget:
    """A tiny HTTP server standing in for the relying party's redirect URI."""

    base_url: str
    paths: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture
def redirect_target() -> Iterator[RedirectTarget]:
    """Answers 200 to any GET on a second free loopback port and records the paths (with query) it saw."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            seen.append(self.path)
            body = b"<!doctype html><title>Client callback</title><p>Callback received.</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield RedirectTarget(base_url=f"http://{HOST}:{server.server_address[1]}", paths=seen)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


# --- committed data for the live server ---

@dataclass(frozen=True)
class LiveUser:
    id: str
    email: str
    password: str
    name: str


@dataclass(frozen=True)
class LiveClient:
    client_id: str
    client_secret: str | None
    redirect_uri: str | None
    scopes: tuple[str, ...]

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


def _engine(app: Flask):
    with app.app_context():
        return db.engine


def _commit(app: Flask, build):
    """Run `build(session)` in a session of its own, commit, close; return what build returned.

    Plain values only come out (no ORM objects): a test that touched a lazy
    attribute would open a transaction, and on SQLite (BEGIN IMMEDIATE) that
    holds the write lock the live server is waiting for.
    """
    with Session(_engine(app)) as session:
        result = build(session)
        session.commit()
    return result


@pytest.fixture
def live_user(app: Flask) -> LiveUser:
    def build(session: Session) -> LiveUser:
        user = users.create_user(session, email="ada@example.com", password=USER_PASSWORD, name="Ada Lovelace",
                                 bcrypt_rounds=4)
        return LiveUser(id=str(user.id), email=user.email, password=USER_PASSWORD, name=user.name)
    return _commit(app, build)


def _create_client(app: Flask, **kwargs) -> LiveClient:
    def build(session: Session) -> LiveClient:
        issued = clients.create_client(session, actor=Actor(user=None), **kwargs)
        redirect_uris = issued.client.redirect_uris
        return LiveClient(client_id=issued.client.client_id, client_secret=issued.client_secret,
                          redirect_uri=redirect_uris[0] if redirect_uris else None,
                          scopes=tuple(issued.client.scopes))
    return _commit(app, build)


@pytest.fixture
def web_client(app: Flask, redirect_target: RedirectTarget) -> LiveClient:
    """A confidential web app (client_secret_basic) redirecting to the redirect target's /cb."""
    return _create_client(app, name="Live Web App", client_type="confidential",
                          redirect_uris=[redirect_target.url("/cb")],
                          grant_types=["authorization_code", "refresh_token"], scopes=USER_SCOPES)


@pytest.fixture
def spa_client(app: Flask, redirect_target: RedirectTarget) -> LiveClient:
    """A public single-page app (auth method none, PKCE required)."""
    return _create_client(app, name="Live SPA", client_type="public",
                          redirect_uris=[redirect_target.url("/spa/callback")],
                          grant_types=["authorization_code", "refresh_token"], scopes=USER_SCOPES)


@pytest.fixture
def machine_client(app: Flask) -> LiveClient:
    """A confidential service using only the client credentials grant."""
    return _create_client(app, name="Live Billing Job", client_type="confidential", redirect_uris=[],
                          grant_types=["client_credentials"], scopes=MACHINE_SCOPES)
