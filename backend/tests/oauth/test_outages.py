"""Fault tests: revocations outlive Redis, and Redis or PostgreSQL going down degrades as README's
reliability section says, never as a 500.

Every test here runs on a PostgreSQL and a Redis of its own (tests/servers.py), whichever database
the suite runs on, and stops and starts them. Requests are driven per endpoint during the outage and
after it, and their answers counted: README quotes these counts.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from flask_migrate import upgrade
from redis import Redis
from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app import create_app, database
from app.config import Settings
from app.database import configure_engine, engine_options
from app.extensions import db
from app.models import AuditEvent, RevokedToken
from tests import factories
from tests.conftest import TEST_SECRET_KEY, make_settings, signing_keys_dir, wait_for
from tests.oauth.conftest import MACHINE_SCOPES
from tests.oauth.helpers import WEB_ORIGIN, SessionAwareClient, verify_jwt
from tests.servers import OwnPostgres, OwnRedis

# Requests per endpoint in each phase: enough to show every answer is the same, few enough for seconds.
REQUESTS = 10


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        server.create()
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def database_url(own_postgres: OwnPostgres) -> str:
    """The suite's fixture, on this module's own PostgreSQL: the schema the migrations build."""
    app = create_app(Settings(ENV="testing", SECRET_KEY=TEST_SECRET_KEY, DATABASE_URL=own_postgres.url,
                              SIGNING_KEYS_DIR=signing_keys_dir()))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return own_postgres.url


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(database_url: str, own_redis: OwnRedis) -> Settings:
    # The client cache on, as in production (testing turns it off).
    return make_settings(database_url, REDIS_URL=own_redis.url, RATELIMIT_LOGIN="1000 per minute",
                         CLIENT_CACHE_SECONDS=30)


class Outage:
    """Stops and starts one of this module's servers; it is running again when the test ends."""

    def __init__(self, server: OwnPostgres) -> None:
        self.server = server
        self.down = False

    def begin(self) -> None:
        self.server.stop()
        self.down = True

    def end(self) -> None:
        self.server.start()
        self.down = False


@pytest.fixture
def postgres_outage(own_postgres: OwnPostgres) -> Iterator[Outage]:
    outage = Outage(own_postgres)
    try:
        yield outage
    finally:
        if outage.down:
            outage.end()


@pytest.fixture
def key_client(register, rsa_key):
    """A machine client authenticating with private_key_jwt (RFC 7523 §2.2)."""
    return register(name="Key Job", grant_types=["client_credentials"], scopes=MACHINE_SCOPES,
                    token_endpoint_auth_method="private_key_jwt", private_jwk=rsa_key)


@contextlib.contextmanager
def instance(settings: Settings, db_session: Session) -> Iterator[SessionAwareClient]:
    """Another instance of the server (another process, as far as the stores go), as a test client."""
    app = create_app(settings)
    app.test_client_class = SessionAwareClient
    try:
        yield app.test_client(db_session=db_session)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def count(times: int, call: Callable[[], object]) -> Counter:
    return Counter(call() for _ in range(times))


def introspection(http, registered, token: str, **headers: str) -> Callable[[], object]:
    def call():
        response = http.post("/oauth2/introspect", headers=headers, **registered.authenticate({"token": token}))
        return response.status_code, (response.get_json() or {}).get("active")
    return call


def status_and_error(http, method: str, path: str, **kwargs) -> Callable[[], object]:
    """(status, the error's type or code) of an enveloped or RFC 6749 §5.2 answer; the media type otherwise."""
    def call():
        response = http.open(path, method=method, **kwargs)
        body = response.get_json(silent=True)
        if body is None:
            return response.status_code, response.mimetype
        return response.status_code, (body.get("error") or {}).get("type") if "version" in body else body.get("error")
    return call


def revocation_from_page(http, registered) -> Callable[[], object]:
    """A revocation (of an unknown token) from a page of the client's origin: the answer's status, its
    error and the origin it may be read from (Fetch Standard §3.2.5)."""
    def call():
        response = http.post("/oauth2/revoke", headers={"Origin": WEB_ORIGIN},
                             **registered.authenticate({"token": "unknown"}))
        return (response.status_code, (response.get_json() or {}).get("error"),
                response.headers.get("Access-Control-Allow-Origin"))
    return call


def page_submission(browser, page, email: str) -> Callable[[], object]:
    def call():
        response = browser.submit_login(page, email)
        return response.status_code, response.mimetype
    return call


def audited_revocations(db_session: Session) -> int:
    db_session.rollback()
    return db_session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "oauth.token_revoked"))


def revoke(http, registered, token: str):
    return http.post("/oauth2/revoke", **registered.authenticate({"token": token}))


# --- revocations outlive Redis ------------------------------------------------------------------


def test_revoked_token_stays_revoked_in_a_new_instance_after_redis_restarted_empty(
        client, web_client, obtain_tokens, own_redis, settings, db_session, bearer):
    """RFC 7009 §2: a revoked token stays revoked, though Redis lost every key."""
    access = obtain_tokens(web_client, scope="openid")["access_token"]
    assert bearer("/oauth2/userinfo", access).status_code == 200
    assert revoke(client, web_client, access).status_code == 200

    own_redis.stop()
    own_redis.start()
    with instance(settings, db_session) as fresh:
        assert introspection(fresh, web_client, access)() == (200, False)
        rejected = fresh.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {access}"})

    assert rejected.status_code == 401 and 'error="invalid_token"' in rejected.headers["WWW-Authenticate"]
    # The restored denial is in Redis again, for every instance.
    assert Redis.from_url(own_redis.url).zscore(f"{settings.RATELIMIT_KEY_PREFIX}:denied", _jti(fresh, access))


def test_denial_made_while_redis_is_down_reaches_every_instance(client, web_client, obtain_tokens, own_redis,
                                                                settings, db_session):
    access = obtain_tokens(web_client, scope="openid")["access_token"]
    with instance(settings, db_session) as other:
        assert introspection(other, web_client, access)() == (200, True)  # mirrored, from here on
        own_redis.stop()

        revoked = revoke(client, web_client, access)
        during = count(REQUESTS, introspection(other, web_client, access))
        own_redis.start()

        def restored_to_redis() -> bool:
            introspection(other, web_client, access)()  # a lookup: the feed subscribes anew, the record restored
            return bool(Redis.from_url(own_redis.url).zscore(f"{settings.RATELIMIT_KEY_PREFIX}:denied",
                                                              _jti(client, access)))
        wait_for(restored_to_redis, "the denial restored to Redis", seconds=5)
        after = count(REQUESTS, introspection(other, web_client, access))
    with instance(settings, db_session) as started_after:
        later = count(REQUESTS, introspection(started_after, web_client, access))

    assert revoked.status_code == 200 and audited_revocations(db_session) == 1
    assert db_session.scalar(select(RevokedToken.key)) == _jti(client, access)
    assert during == after == later == {(200, False): REQUESTS}


# --- Redis down ------------------------------------------------------------------------------------


def test_redis_down_issues_tokens_answers_introspection_and_signs_in(client, machine_client, web_client,
                                                                     key_client, obtain_tokens, own_redis, user,
                                                                     db_session):
    """With Redis down: issuance works, introspection answers from the database (RFC 7662 bodies),
    sign-in keeps working on per-process rate limits, health says 503. A private_key_jwt
    client assertion, whose single use (RFC 7523 §3) only Redis can vouch for, is refused with
    temporarily_unavailable."""
    live = obtain_tokens(web_client, scope="openid")["access_token"]
    revoked = obtain_tokens(web_client, scope="openid")["access_token"]
    assert revoke(client, web_client, revoked).status_code == 200
    credentials = {"email": user.email, "password": factories.DEFAULT_PASSWORD}
    _, api_key = factories.api_key(db_session, user)
    endpoints = {  # the API key first: no limited route has found Redis down before it
        "API key": status_and_error(client, "GET", "/api/v1/users/me", headers={"X-API-Key": api_key}),
        "token": lambda: client.post("/oauth2/token", **machine_client.authenticate(
            {"grant_type": "client_credentials", "scope": MACHINE_SCOPES[0]})).status_code,
        "token (private_key_jwt)": lambda: status_and_error(client, "POST", "/oauth2/token", **key_client.authenticate(
            {"grant_type": "client_credentials", "scope": MACHINE_SCOPES[0]}))(),  # a new assertion each time
        "introspect live": introspection(client, web_client, live),
        "introspect revoked": introspection(client, web_client, revoked),
        "API sign-in": status_and_error(client, "POST", "/api/v1/auth/login", json=credentials),
        "health": status_and_error(client, "GET", "/api/health"),
    }

    own_redis.stop()
    during = {name: count(REQUESTS, call) for name, call in endpoints.items()}
    own_redis.start()
    wait_for(lambda: client.get("/api/health").status_code == 200, "health after Redis is back", seconds=5)
    after = {name: count(REQUESTS, call) for name, call in endpoints.items()}

    assert during == {
        "token": {200: REQUESTS},
        "token (private_key_jwt)": {(503, "temporarily_unavailable"): REQUESTS},
        "introspect live": {(200, True): REQUESTS},
        "introspect revoked": {(200, False): REQUESTS},
        "API sign-in": {(200, None): REQUESTS},
        "API key": {(200, None): REQUESTS},
        "health": {(503, "SERVICE_UNAVAILABLE"): REQUESTS},
    }
    assert after == {**during, "token (private_key_jwt)": {(200, None): REQUESTS}, "health": {(200, None): REQUESTS}}


def test_refused_api_keys_count_in_one_place_through_a_redis_outage(settings, own_redis, user, db_session):
    """RATELIMIT_API_KEY_FAILURES while Redis is down: one budget per process, whether or not a limited route
    (here the sign-in) has found Redis down in between; the fourth refused key of three allowed is 429."""
    with instance(replace(settings, RATELIMIT_API_KEY_FAILURES="3 per minute"), db_session) as http:
        def refused_key(n: int) -> int:
            return http.get("/api/v1/users/me", headers={"X-API-Key": f"gh_wrong-{n}"}).status_code

        own_redis.stop()
        before = [refused_key(n) for n in range(2)]
        sign_in = http.post("/api/v1/auth/login", json={"email": user.email, "password": factories.DEFAULT_PASSWORD})
        after = [refused_key(n) for n in range(2, 4)]
        own_redis.start()

    assert sign_in.status_code == 200
    assert (before, after) == ([401, 401], [401, 429])


# --- PostgreSQL down -------------------------------------------------------------------------------


def test_postgres_down_answers_503_in_each_format_and_revocations_are_refused_whole(
        client, web_client, machine_client, obtain_tokens, browser, user, db_session, postgres_outage, settings):
    """With PostgreSQL down: what needs it answers 503 in its own format (the envelope, RFC 6749
    §5.2's temporarily_unavailable, an HTML page); introspection of access tokens still answers
    (the client cache and the denylist need no database); a revocation is refused whole."""
    live = obtain_tokens(web_client, scope="openid")["access_token"]
    revoked = obtain_tokens(web_client, scope="openid")["access_token"]
    assert revoke(client, web_client, revoked).status_code == 200
    session_token = factories.session_token(user)
    login_page = browser.login_page()
    client_credentials = machine_client.authenticate({"grant_type": "client_credentials", "scope": MACHINE_SCOPES[0]})
    assert client.post("/oauth2/token", **client_credentials).status_code == 200  # the client in the cache
    assert revocation_from_page(client, web_client)() == (200, None, WEB_ORIGIN)  # the origins in the cache
    endpoints = {
        "token": lambda: client.post("/oauth2/token", **client_credentials).status_code,
        "JWKS": lambda: client.get("/oauth2/jwks").status_code,
        "discovery": lambda: client.get("/.well-known/openid-configuration").status_code,
        "introspect live": introspection(client, web_client, live),
        "introspect revoked": introspection(client, web_client, revoked),
        "revoke": status_and_error(client, "POST", "/oauth2/revoke", **web_client.authenticate({"token": live})),
        "revoke from the client's page": revocation_from_page(client, web_client),
        "API sign-in": status_and_error(client, "POST", "/api/v1/auth/login",
                                        json={"email": user.email, "password": factories.DEFAULT_PASSWORD}),
        "API /users/me": status_and_error(client, "GET", "/api/v1/users/me",
                                          headers={"Authorization": f"Bearer {session_token}"}),
        "sign-in page (POST /login)": page_submission(browser, login_page, user.email),
        "health": status_and_error(client, "GET", "/api/health"),
    }
    db_session.commit()
    audited_before = audited_revocations(db_session)
    db_session.close()

    postgres_outage.begin()
    during = {name: count(REQUESTS, call) for name, call in endpoints.items()
              if name not in ("revoke", "revoke from the client's page")}
    during_revoke = count(REQUESTS, endpoints["revoke"])
    during_from_page = count(REQUESTS, endpoints["revoke from the client's page"])
    with instance(settings, db_session) as started_during:  # it has never read the origin list
        with started_during.application.app_context():
            connecting = []
            event.listen(db.engine, "do_connect", lambda *args: connecting.append(args))
        unread_origins = revocation_from_page(started_during, web_client)()
        attempts_for_the_503 = len(connecting)
        # Refused before the view: a 400, whose headers cannot ask the database either, and stays a 400.
        refused = started_during.post("/oauth2/revoke", headers={"Origin": WEB_ORIGIN}, data={"token": "a\x00b"})
    postgres_outage.end()
    still_live = introspection(client, web_client, live)()
    audited_after_outage = audited_revocations(db_session)
    after = {name: count(1, call) for name, call in endpoints.items()}

    assert during == {
        "token": {200: REQUESTS},
        "JWKS": {200: REQUESTS},
        "discovery": {200: REQUESTS},
        "introspect live": {(200, True): REQUESTS},
        "introspect revoked": {(200, False): REQUESTS},
        "API sign-in": {(503, "SERVICE_UNAVAILABLE"): REQUESTS},
        "API /users/me": {(503, "SERVICE_UNAVAILABLE"): REQUESTS},
        "sign-in page (POST /login)": {(503, "text/html"): REQUESTS},
        "health": {(503, "SERVICE_UNAVAILABLE"): REQUESTS},
    }
    assert during_revoke == {(503, "temporarily_unavailable"): REQUESTS}
    # RFC 6749 §5.2 error readable by the client's page: the CORS headers come with errors too.
    assert during_from_page == {(503, "temporarily_unavailable", WEB_ORIGIN): REQUESTS}
    # Where the origins cannot be read, the same 503 without the header: never a 500.
    assert unread_origins == (503, "temporarily_unavailable", None)
    assert attempts_for_the_503 == 1  # the request's own attempt: the headers do not wait for the database again
    assert (refused.status_code, refused.get_json()["error"], refused.headers.get("Access-Control-Allow-Origin")) \
        == (400, "invalid_request", None)
    # Refused whole: not denied, not audited; revoking it afterwards works.
    assert still_live == (200, True) and audited_after_outage == audited_before
    assert after["revoke"] == {(200, None): 1} and after["API sign-in"] == {(200, None): 1}
    assert after["health"] == {(200, None): 1}
    assert after["revoke from the client's page"] == {(200, None, WEB_ORIGIN): 1}
    assert introspection(client, web_client, live)() == (200, False)


class Clock:
    """The pool's idle clock, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pooled_engine(database_url: str, clock: Clock) -> Iterator[Engine]:
    """The app's engine as app/database.py configures it, on the test's clock."""
    engine = create_engine(database_url, **engine_options(database_url))
    configure_engine(engine, clock=clock)
    yield engine
    engine.dispose()


def select_one(connection: Connection) -> int:
    return connection.execute(text("SELECT 1")).scalar()


def test_a_connection_idle_in_the_pool_is_pinged_and_replaced_after_a_restart(pooled_engine, clock, postgres_outage):
    """A pooled connection idle for PING_AFTER_IDLE_SECONDS is pinged before use: after PostgreSQL
    restarted, the first request is served on a new connection, not answered 503."""
    with pooled_engine.connect() as connection:
        assert select_one(connection) == 1
    postgres_outage.begin()
    postgres_outage.end()
    clock.now += database.PING_AFTER_IDLE_SECONDS

    with pooled_engine.connect() as connection:
        assert select_one(connection) == 1


def test_a_connection_checked_in_a_moment_ago_is_not_pinged(pooled_engine, clock, postgres_outage):
    """Idle time counts from the last check-in, not from the connection's making: one checked in less
    than PING_AFTER_IDLE_SECONDS ago is used without a ping (a round trip saved per request). Had
    PostgreSQL restarted in that moment, the statement fails as a disconnect (the request's 503) and
    the pool connects anew for the next one."""
    with pooled_engine.connect() as connection:  # made at 0
        clock.now = 100.0
        assert select_one(connection) == 1
    postgres_outage.begin()  # checked in at 100
    postgres_outage.end()
    clock.now = 100.0 + database.PING_AFTER_IDLE_SECONDS / 2

    with pytest.raises(OperationalError) as failed, pooled_engine.connect() as connection:
        select_one(connection)
    assert failed.value.connection_invalidated
    with pooled_engine.connect() as connection:
        assert select_one(connection) == 1


def test_a_failed_ping_renews_every_pooled_connection(pooled_engine, clock, postgres_outage):
    """As pool_pre_ping does: a ping that finds the server gone invalidates the whole pool, so a connection
    checked in a moment before the restart (which no ping would check) is made anew too."""
    with pooled_engine.connect() as idle, pooled_engine.connect() as recent:
        select_one(idle), select_one(recent)
        idle.close()  # checked in at 0: handed out first (the pool is first in, first out)
        clock.now = 100.0
    postgres_outage.begin()  # `recent` checked in at 100
    postgres_outage.end()
    clock.now = 100.0 + database.PING_AFTER_IDLE_SECONDS / 2

    with pooled_engine.connect() as first, pooled_engine.connect() as second:
        assert (select_one(first), select_one(second)) == (1, 1)


def _jti(http, access: str) -> str:
    return verify_jwt(http, access).claims["jti"]
