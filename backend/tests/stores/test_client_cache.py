"""stores.client_cache: the protocol endpoints' client lookups, and when they see changes."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from app import create_app
from app.extensions import db
from app.models import OAuthClient, Organization
from app.services import authorization_context, client_origins, clients, organizations
from app.services.actor import Actor
from app.stores.client_cache import CHANGED_CLIENTS_KEY, ClientCache, MemoryClientVersions, RedisClientVersions
from tests.conftest import (Clock, SHARED_REDIS_URL, break_subscription, count_sql, make_settings, shared_feed,
                            wait_for)
from tests.factories import DEFAULT_CLIENT_SECRET, OAuthClientFactory, UserFactory, create_organization


def new_cache(versions, **options) -> ClientCache:
    """A cache reading the database as create_app's does."""
    return ClientCache(versions, load_client=clients.get_client, load_origins=client_origins.all_cors_origins, **options)


class BrokenVersions(MemoryClientVersions):
    def current(self, client_id: str) -> int | None:
        return None

    def registry(self) -> int | None:
        return None


def selects(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


@pytest.fixture
def engine(app: Flask):
    with app.app_context():
        return db.engine


@dataclass(frozen=True)
class Machine:
    id: uuid.UUID
    client_id: str
    client_secret_hash: str
    name: str
    scopes: list[str]
    grant_types: list[str]


@pytest.fixture
def machine(db_session: Session) -> Machine:
    """A client-credentials client, committed; the test's session holds no transaction afterwards
    (with SQLite an open one would keep other sessions from starting theirs)."""
    client = OAuthClientFactory(grant_types=["client_credentials"], response_types=[], redirect_uris=[],
                                post_logout_redirect_uris=[], scopes=["invoices:read", "invoices:write"])
    snapshot = Machine(client.id, client.client_id, client.client_secret_hash, client.name, list(client.scopes),
                       list(client.grant_types))
    db_session.commit()
    return snapshot


def fresh(engine) -> Session:
    """Another request's session."""
    return Session(engine)


# --- the cache on its own --------------------------------------------------------------

def test_a_hit_needs_no_sql_and_gives_each_request_its_own_clean_object(engine, machine):
    cache = new_cache(MemoryClientVersions(), ttl=30)
    with fresh(engine) as first:
        loaded = cache.get(first, machine.client_id)
        assert loaded.scopes == ["invoices:read", "invoices:write"]
    with fresh(engine) as second, count_sql(engine) as sql:
        hit = cache.get(second, machine.client_id)
        assert sql == []
        assert hit is not loaded
        assert hit not in second and not second.dirty and not second.new
        assert (hit.id, hit.client_id, hit.client_secret_hash, hit.scopes, hit.grant_types) == \
               (machine.id, machine.client_id, machine.client_secret_hash, machine.scopes, machine.grant_types)
        assert hit.check_client_secret(DEFAULT_CLIENT_SECRET)
        hit.scopes.append("mutated")  # a request changing its copy does not change the cache
        second.commit()
        assert hit.name == machine.name  # still loaded after the commit: nothing expired, nothing re-read
        assert sql == []
    with fresh(engine) as third:
        assert cache.get(third, machine.client_id).scopes == ["invoices:read", "invoices:write"]


def test_a_request_changing_its_copy_of_a_registered_jwks_does_not_change_the_cache(engine, db_session):
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "x": "AA", "y": "AA"}]}
    client_id = OAuthClientFactory(token_endpoint_auth_method="private_key_jwt", client_secret=None, jwks=jwks).client_id
    db_session.commit()
    cache = new_cache(MemoryClientVersions(), ttl=30)
    with fresh(engine) as s:
        cache.get(s, client_id)
    with fresh(engine) as s:
        hit = cache.get(s, client_id)
        hit.jwks["keys"][0]["kid"] = "mutated"
        hit.jwks["keys"].append({"kty": "oct"})
    with fresh(engine) as s:
        assert cache.get(s, client_id).jwks == jwks


def test_a_hit_added_to_a_session_joins_it_unmodified(engine, machine):
    """A copy that reaches a session (explicitly or by cascade) is a persistent row, never a new one."""
    cache = new_cache(MemoryClientVersions(), ttl=30)
    with fresh(engine) as s:
        cache.get(s, machine.client_id)
    with fresh(engine) as s, count_sql(engine) as sql:
        hit = cache.get(s, machine.client_id)
        s.add(hit)
        assert hit in s and not s.new and not s.dirty
        s.commit()
        assert sql == []  # no INSERT, no UPDATE


def test_a_hit_opens_no_session(app, engine, machine):
    """Through Flask-SQLAlchemy's scoped session, a hit leaves the request without a session: there is
    nothing to commit or close (a client-credentials token then needs no database connection)."""
    cache = new_cache(MemoryClientVersions(), ttl=30)
    with app.app_context():
        cache.get(db.session, machine.client_id)
    with app.app_context():
        assert cache.get(db.session, machine.client_id).client_id == machine.client_id
        assert not db.session.registry.has()


def test_a_hit_returns_the_instance_the_session_already_holds(engine, machine):
    cache = new_cache(MemoryClientVersions(), ttl=30)
    with fresh(engine) as s:
        cache.get(s, machine.client_id)
    with fresh(engine) as s:
        held = s.get(OAuthClient, machine.id)
        assert cache.get(s, machine.client_id) is held


def test_a_version_bump_makes_the_next_lookup_read_the_database(engine, machine):
    versions = MemoryClientVersions()
    cache, other_process = new_cache(versions, ttl=30), new_cache(versions, ttl=30)
    with fresh(engine) as s:
        assert other_process.get(s, machine.client_id).scopes == ["invoices:read", "invoices:write"]
    with fresh(engine) as s:
        s.execute(update(OAuthClient).where(OAuthClient.id == machine.id).values(scopes=["invoices:read"]))
        s.commit()
    with fresh(engine) as s:  # unchanged for up to ttl without a bump ...
        assert other_process.get(s, machine.client_id).scopes == ["invoices:read", "invoices:write"]
    cache.invalidate([machine.client_id])  # ... the change was published by another process's cache
    with fresh(engine) as s, count_sql(engine) as sql:
        assert other_process.get(s, machine.client_id).scopes == ["invoices:read"]
        assert len(selects(sql)) == 1


def test_entries_expire_after_ttl(engine, machine):
    clock = Clock()
    cache = new_cache(MemoryClientVersions(), ttl=30, clock=clock)
    with fresh(engine) as s:
        cache.get(s, machine.client_id)
    with fresh(engine) as s:
        s.execute(update(OAuthClient).where(OAuthClient.id == machine.id).values(name="Renamed by hand"))
        s.commit()
    clock.now += 29
    with fresh(engine) as s:
        assert cache.get(s, machine.client_id).name == machine.name
    clock.now += 1
    with fresh(engine) as s:
        assert cache.get(s, machine.client_id).name == "Renamed by hand"


def test_unknown_clients_are_not_cached(engine, db_session):
    cache = new_cache(MemoryClientVersions(), ttl=30)
    with fresh(engine) as s:
        assert cache.get(s, "not-yet") is None
    OAuthClientFactory(client_id="not-yet")
    db_session.commit()
    with fresh(engine) as s:
        assert cache.get(s, "not-yet").client_id == "not-yet"


@pytest.mark.parametrize("cache", [
    new_cache(MemoryClientVersions(), ttl=0),
    new_cache(BrokenVersions(), ttl=30),
], ids=["ttl-0", "version-unreadable"])
def test_without_a_usable_cache_every_lookup_reads_the_database(engine, machine, cache):
    for _ in range(2):
        with fresh(engine) as s, count_sql(engine) as sql:
            assert cache.get(s, machine.client_id).client_id == machine.client_id
            assert len(selects(sql)) == 1


def test_a_client_changed_in_the_open_transaction_is_not_cached(engine, machine):
    cache = new_cache(MemoryClientVersions(), ttl=30)
    with fresh(engine) as s:
        client = clients.get_client(s, machine.client_id)
        clients.update_client(s, actor=Actor(user=None), client=client, name="Not committed")
        assert cache.get(s, machine.client_id).name == "Not committed"
        s.rollback()
    with fresh(engine) as s:
        assert cache.get(s, machine.client_id).name == machine.name


def test_the_cache_is_bounded(engine, db_session):
    clock = Clock()
    cache = new_cache(MemoryClientVersions(), ttl=30, max_entries=3, clock=clock)
    ids = [OAuthClientFactory().client_id for _ in range(5)]
    db_session.commit()
    with fresh(engine) as s:
        for client_id in ids:
            cache.get(s, client_id)
    assert list(cache._entries) == ids[2:]  # the oldest went first
    clock.now += 30  # every entry expired
    with fresh(engine) as s:
        cache.get(s, ids[4])  # read again and kept under the same id: nothing else has to go
    assert list(cache._entries) == ids[2:]


# --- the CORS origins -------------------------------------------------------------------

SPA_ORIGIN = "https://spa.example.org"


def test_cors_origins_are_read_once_until_a_client_changes(engine, db_session):
    """Every CORS request asks; the union of every client's origins is one scan, made again only
    after a client is created, changed or deleted (invalidate, called after the commit)."""
    cache = new_cache(MemoryClientVersions(), ttl=30)
    OAuthClientFactory(redirect_uris=["https://rp.example.org/cb"])
    db_session.commit()
    with fresh(engine) as s:
        assert cache.cors_origins(s) == {"https://rp.example.org"}
    with fresh(engine) as s, count_sql(engine) as sql:
        assert cache.cors_origins(s) == {"https://rp.example.org"}
        assert sql == []

    with fresh(engine) as s:
        issued = clients.create_client(s, actor=Actor(user=None), name="SPA", client_type="public",
                                       redirect_uris=[f"{SPA_ORIGIN}/callback"],
                                       grant_types=["authorization_code"], scopes=["openid"])
        changed, new_client_id = s.info.pop(CHANGED_CLIENTS_KEY), issued.client.client_id
        s.commit()
    assert changed == {new_client_id}  # creation is a change too: its origins are new
    cache.invalidate(changed)
    with fresh(engine) as s:
        assert cache.cors_origins(s) == {"https://rp.example.org", SPA_ORIGIN}


class UnpublishedVersions(MemoryClientVersions):
    """Versions whose bumps never arrive: a PUBLISH that failed, or this process's own message still
    on its way back from Redis."""

    def bump(self, client_ids) -> None:
        pass


def test_invalidate_forgets_the_changed_clients_in_this_process_without_waiting_for_the_feed(engine, machine):
    """The process that made a change sees it at once (a rotated secret stops working where it was
    rotated), whatever becomes of its announcement to the others."""
    cache = new_cache(UnpublishedVersions(), ttl=30)
    with fresh(engine) as s:
        assert cache.get(s, machine.client_id).name == machine.name
        assert cache.cors_origins(s) == frozenset()
    with fresh(engine) as s:
        s.execute(update(OAuthClient).where(OAuthClient.id == machine.id)
                  .values(name="Renamed", redirect_uris=[f"{SPA_ORIGIN}/callback"]))
        s.commit()
    cache.invalidate([machine.client_id])
    with fresh(engine) as s:
        assert cache.get(s, machine.client_id).name == "Renamed"
        assert cache.cors_origins(s) == {SPA_ORIGIN}


def test_cors_origins_follow_a_change_made_by_another_process(engine, db_session):
    versions = MemoryClientVersions()
    cache, other_process = new_cache(versions, ttl=30), new_cache(versions, ttl=30)
    with fresh(engine) as s:
        assert cache.cors_origins(s) == frozenset()
    OAuthClientFactory(redirect_uris=[f"{SPA_ORIGIN}/cb"])
    db_session.commit()
    other_process.invalidate(["the-new-client"])
    with fresh(engine) as s:
        assert cache.cors_origins(s) == {SPA_ORIGIN}


def test_cors_origins_expire_after_ttl_and_are_not_kept_from_an_open_change(engine, db_session):
    clock = Clock()
    cache = new_cache(MemoryClientVersions(), ttl=30, clock=clock)
    with fresh(engine) as s:
        assert cache.cors_origins(s) == frozenset()
    client_id = OAuthClientFactory(redirect_uris=[f"{SPA_ORIGIN}/cb"]).client_id  # behind the services' back
    db_session.commit()
    with fresh(engine) as s:
        assert cache.cors_origins(s) == frozenset()
    clock.now += 30
    with fresh(engine) as s:
        assert cache.cors_origins(s) == {SPA_ORIGIN}

    with fresh(engine) as s:
        client = clients.get_client(s, client_id)
        clients.update_client(s, actor=Actor(user=None), client=client, redirect_uris=["https://x.example.org/cb"])
        s.flush()
        assert cache.cors_origins(s) == {"https://x.example.org"}  # this transaction sees its own change
        s.rollback()
    with fresh(engine) as s, count_sql(engine) as sql:
        assert cache.cors_origins(s) == {SPA_ORIGIN}  # the rolled-back change was never cached
        assert sql == []


@pytest.mark.parametrize("cache", [
    new_cache(MemoryClientVersions(), ttl=0),
    new_cache(BrokenVersions(), ttl=30),
], ids=["ttl-0", "version-unreadable"])
def test_without_a_usable_cache_cors_origins_are_read_every_time(engine, db_session, cache):
    OAuthClientFactory(redirect_uris=[f"{SPA_ORIGIN}/cb"])
    db_session.commit()
    for _ in range(2):
        with fresh(engine) as s, count_sql(engine) as sql:
            assert cache.cors_origins(s) == {SPA_ORIGIN}
            assert len(selects(sql)) == 1


def test_the_registry_version_moves_with_every_published_change():
    prefix = f"test-{uuid.uuid4().hex}"
    first, other = shared_versions(prefix), shared_versions(prefix)
    before = first.registry()
    assert before is not None
    other.bump(["client-a"])
    wait_for(lambda: first.registry() != before, "the change never reached the other process")


# --- the organization claims of a client's own tokens --------------------------------------

def organization_claims_loader(calls: list):
    def load(db, *, client):
        calls.append(client.client_id)
        return authorization_context.client_claims(db, client=client)
    return load


def test_an_organization_clients_claims_are_read_once_until_it_changes(engine, db_session):
    owner = UserFactory()
    org = create_organization(db_session, owner=owner, slug="acme", name="Acme")
    client_id, org_id, owner_id = OAuthClientFactory(organization_id=org.id).client_id, org.id, owner.id
    db_session.commit()  # and db_session is not read again: with SQLite it would hold the lock
    cache, calls = new_cache(MemoryClientVersions(), ttl=30), []
    load = organization_claims_loader(calls)
    for _ in range(3):
        with fresh(engine) as s, count_sql(engine) as sql:
            claims = cache.client_claims(s, cache.get(s, client_id), load)
            assert (claims["org_slug"], claims["org_name"]) == ("acme", "Acme")
            claims["org_name"] = "changed by a caller"  # each caller's own copy
    assert calls == [client_id] and sql == []  # after the first time: no SQL at all

    with fresh(engine) as s:  # a transaction that changed the client reads its claims afresh
        client = cache.get(s, client_id)
        s.info[CHANGED_CLIENTS_KEY] = {client_id}
        assert cache.client_claims(s, client, load)["org_name"] == "Acme"
        s.info.pop(CHANGED_CLIENTS_KEY)
    assert calls == [client_id, client_id]

    with fresh(engine) as s:
        access = organizations.require_access(s, user=s.get(type(owner), owner_id), organization_id=org_id,
                                              permission="org:update")
        organizations.update_organization(s, actor=Actor(user=None), access=access, name="Acme Renamed")
        changed = s.info.pop(CHANGED_CLIENTS_KEY)
        s.commit()
    assert changed == {client_id}  # a rename is a change to each of the organization's clients
    cache.invalidate(changed)
    with fresh(engine) as s:
        assert cache.client_claims(s, cache.get(s, client_id), load)["org_name"] == "Acme Renamed"


class CountingVersions(MemoryClientVersions):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def current(self, client_id: str) -> int | None:
        self.reads += 1
        return super().current(client_id)


def test_a_platform_clients_claims_are_empty_and_need_no_version(engine, machine):
    """Nothing to read or keep for a platform client: its tokens carry no organization claims."""
    versions, calls = CountingVersions(), []
    cache = new_cache(versions, ttl=30)
    with fresh(engine) as s:
        client = clients.get_client(s, machine.client_id)
        assert cache.client_claims(s, client, organization_claims_loader(calls)) == {}
    assert versions.reads == 0 and calls == [machine.client_id]


# --- every change is noted, however it is made --------------------------------------------

@pytest.fixture
def org_client(db_session: Session) -> Machine:
    """A client-credentials client of an organization "acme", committed."""
    org = create_organization(db_session, owner=UserFactory(), slug="acme", name="Acme")
    client = OAuthClientFactory(organization_id=org.id, grant_types=["client_credentials"], response_types=[],
                                redirect_uris=[], post_logout_redirect_uris=[], scopes=["invoices:read"])
    snapshot = Machine(client.id, client.client_id, client.client_secret_hash, client.name, list(client.scopes),
                       list(client.grant_types))
    db_session.commit()
    return snapshot


def org_of(s: Session, client: Machine) -> Organization:
    return s.get(Organization, s.get(OAuthClient, client.id).organization_id)


# How each change is made: none of them calls a service, or anything that tells the cache.
CLIENT_CHANGES = {
    "attribute set": lambda s, c: setattr(s.get(OAuthClient, c.id), "scopes", ["invoices:read"]),
    "ORM delete": lambda s, c: s.delete(s.get(OAuthClient, c.id)),
    "UPDATE statement": lambda s, c: s.execute(update(OAuthClient).where(OAuthClient.id == c.id)
                                               .values(scopes=["invoices:read"])),
    "DELETE statement": lambda s, c: s.execute(delete(OAuthClient).where(OAuthClient.client_id == c.client_id)),
}
ORGANIZATION_CHANGES = {
    "organization renamed": lambda s, c: setattr(org_of(s, c), "name", "Acme Renamed"),
    "organization slug set": lambda s, c: setattr(org_of(s, c), "slug", "acme-renamed"),
    "organization UPDATE statement": lambda s, c: s.execute(
        update(Organization).where(Organization.slug == "acme").values(name="Acme Renamed")),
}


def noted(engine, change, client: Machine) -> set[str] | None:
    """What `change` and the flush that follows it note in the session as changed."""
    with fresh(engine) as s:
        change(s, client)
        s.flush()
        found = s.info.get(CHANGED_CLIENTS_KEY)
        s.rollback()
        assert CHANGED_CLIENTS_KEY not in s.info  # a rollback forgets them
    return found


@pytest.mark.parametrize("change", CLIENT_CHANGES.values(), ids=CLIENT_CHANGES)
def test_every_kind_of_client_change_is_noted(engine, machine, change):
    assert noted(engine, change, machine) == {machine.client_id}


@pytest.mark.parametrize("change", ORGANIZATION_CHANGES.values(), ids=ORGANIZATION_CHANGES)
def test_a_new_name_or_slug_of_an_organization_is_a_change_to_each_of_its_clients(engine, org_client, change):
    assert noted(engine, change, org_client) == {org_client.client_id}


@pytest.mark.parametrize("change", [
    lambda s, c: setattr(s.get(OAuthClient, c.id), "name", c.name),
    lambda s, c: setattr(org_of(s, c), "settings", {"theme": "dark"}),
    lambda s, c: s.execute(update(Organization).where(Organization.slug == "no-such-organization")
                           .values(name="Nobody")),
], ids=["same value set again", "organization settings", "UPDATE matching nothing"])
def test_what_changes_no_clients_data_is_not_noted(engine, org_client, change):
    assert noted(engine, change, org_client) is None


def test_a_client_added_by_an_insert_statement_changes_the_registry(engine, machine):
    """An INSERT statement names no client the cache holds, but adds CORS origins: noted as a change
    of the registry, with no client_id."""
    with fresh(engine) as s:
        row = {c.key: getattr(s.get(OAuthClient, machine.id), c.key) for c in OAuthClient.__table__.columns}
        s.execute(insert(OAuthClient).values({**row, "id": uuid.uuid4(), "client_id": "inserted"}))
        assert s.info[CHANGED_CLIENTS_KEY] == set()
        s.rollback()


def test_a_change_inside_a_savepoint_waits_for_its_transaction(app, machine):
    """Releasing a savepoint commits nothing: the change is published when the transaction commits."""
    versions = app.extensions["gatehouse.stores"].client_cache.versions
    before = versions.current(machine.client_id)
    with app.app_context():
        with db.session.begin_nested():
            db.session.get(OAuthClient, machine.id).name = "Renamed in a savepoint"
        assert versions.current(machine.client_id) == before
        with db.session.begin_nested() as savepoint:  # a savepoint rolled back keeps the transaction's changes
            db.session.get(OAuthClient, machine.id).scopes = ["invoices:read"]
            db.session.flush()
            savepoint.rollback()
        db.session.commit()
    wait_for(lambda: versions.current(machine.client_id) != before, "the committed change was never published")


# --- through the app: changes made by the services apply at once ------------------------

@pytest.fixture
def settings(database_url: str):
    return make_settings(database_url, CLIENT_CACHE_SECONDS=30)


def token_request(app: Flask, client_id: str, secret: str, **form: str):
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return app.test_client().post("/oauth2/token", data={"grant_type": "client_credentials", **form},
                                  headers={"Authorization": f"Basic {basic}"})


def change(app: Flask, client_id: str, fn) -> object:
    """Run a service function on the client in its own committed transaction, as the API does."""
    with app.app_context():
        client = clients.require_client(db.session, client_id)
        result = fn(client)
        db.session.commit()
    return result


def test_client_credentials_hits_issue_no_sql(app, engine, machine, db_session):
    db_session.commit()
    assert token_request(app, machine.client_id, DEFAULT_CLIENT_SECRET).status_code == 200
    with count_sql(engine) as sql:
        assert token_request(app, machine.client_id, DEFAULT_CLIENT_SECRET).status_code == 200
    assert sql == []


def test_a_rotated_secret_stops_working_at_once(app, machine, db_session):
    db_session.commit()
    assert token_request(app, machine.client_id, DEFAULT_CLIENT_SECRET).status_code == 200
    issued = change(app, machine.client_id,
                    lambda c: clients.rotate_client_secret(db.session, actor=Actor(user=None), client=c))
    assert token_request(app, machine.client_id, DEFAULT_CLIENT_SECRET).status_code == 401
    assert token_request(app, machine.client_id, issued.client_secret).status_code == 200


def test_an_update_applies_at_once(app, machine, db_session):
    db_session.commit()
    assert token_request(app, machine.client_id, DEFAULT_CLIENT_SECRET, scope="invoices:write").status_code == 200
    change(app, machine.client_id,
           lambda c: clients.update_client(db.session, actor=Actor(user=None), client=c, scopes=["invoices:read"]))
    response = token_request(app, machine.client_id, DEFAULT_CLIENT_SECRET, scope="invoices:write")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_scope"


def test_a_deleted_client_stops_at_once(app, machine, db_session):
    db_session.commit()
    assert token_request(app, machine.client_id, DEFAULT_CLIENT_SECRET).status_code == 200
    change(app, machine.client_id, lambda c: clients.delete_client(db.session, actor=Actor(user=None), client=c))
    assert token_request(app, machine.client_id, DEFAULT_CLIENT_SECRET).status_code == 401


def test_a_new_clients_origin_is_allowed_at_once(app, db_session):
    """oauth/cors.py asks the cache for the allowed origins; registering a client applies at once."""
    def preflight():
        return app.test_client().options("/oauth2/token", headers={
            "Origin": SPA_ORIGIN, "Access-Control-Request-Method": "POST"})
    db_session.commit()
    assert "Access-Control-Allow-Origin" not in preflight().headers
    assert "Access-Control-Allow-Origin" not in preflight().headers  # now from the cache
    with app.app_context():
        clients.create_client(db.session, actor=Actor(user=None), name="SPA", client_type="public",
                              redirect_uris=[f"{SPA_ORIGIN}/callback"], grant_types=["authorization_code"],
                              scopes=["openid"])
        db.session.commit()
    assert preflight().headers["Access-Control-Allow-Origin"] == SPA_ORIGIN


@pytest.mark.parametrize("renamed", [{"name": "Acme Renamed"}, {"slug": "acme-renamed"},
                                     {"name": "Acme Renamed", "slug": "acme-renamed"}], ids=["name", "slug", "both"])
def test_an_organization_rename_reaches_its_clients_tokens_at_once(app, engine, db_session, renamed):
    """A client-credentials token of an organization's client carries org_slug and org_name; the cache
    keeps them (no SQL on a hit), and a new name or slug applies to the next token."""
    owner = UserFactory()
    org = create_organization(db_session, owner=owner, slug="acme", name="Acme")
    client = OAuthClientFactory(organization_id=org.id, grant_types=["client_credentials"], response_types=[],
                                redirect_uris=[], post_logout_redirect_uris=[], scopes=["invoices:read"])
    client_id, org_id, owner_id = client.client_id, org.id, owner.id
    db_session.commit()  # and db_session is not read again: with SQLite it would hold the lock

    def org_claims():
        response = token_request(app, client_id, DEFAULT_CLIENT_SECRET)
        assert response.status_code == 200, response.get_json()
        claims = json.loads(base64.urlsafe_b64decode(response.get_json()["access_token"].split(".")[1] + "=="))
        return claims["org_slug"], claims["org_name"]

    assert org_claims() == ("acme", "Acme")
    with count_sql(engine) as sql:
        assert org_claims() == ("acme", "Acme")
    assert sql == []
    with app.app_context():
        access = organizations.require_access(db.session, user=db.session.get(type(owner), owner_id),
                                              organization_id=org_id, permission="org:update")
        organizations.update_organization(db.session, actor=Actor(user=None), access=access, **renamed)
        db.session.commit()
    assert org_claims() == (renamed.get("slug", "acme"), renamed.get("name", "Acme"))


def change_by_hand(app: Flask, client: Machine, change) -> None:
    """Make `change` in a committed transaction of the app, as code that calls no service would."""
    with app.app_context():
        change(db.session, client)
        db.session.commit()


def still_has_invoices_write(app: Flask, client: Machine) -> bool:
    """Whether the client still authenticates and may still ask for invoices:write."""
    response = token_request(app, client.client_id, DEFAULT_CLIENT_SECRET, scope="invoices:write")
    assert response.status_code in (200, 400, 401), response.get_json()
    return response.status_code == 200


@pytest.mark.parametrize("change", CLIENT_CHANGES.values(), ids=CLIENT_CHANGES)
def test_a_change_made_without_the_services_applies_at_once(app, machine, db_session, change):
    """No code path has to tell the cache: the listener sees every committed change (each of these
    either takes invoices:write away or deletes the client)."""
    db_session.commit()
    assert still_has_invoices_write(app, machine)
    assert still_has_invoices_write(app, machine)  # a cache hit
    change_by_hand(app, machine, change)
    assert not still_has_invoices_write(app, machine)


@pytest.mark.parametrize("change", ORGANIZATION_CHANGES.values(), ids=ORGANIZATION_CHANGES)
def test_an_organization_change_made_without_the_services_reaches_its_clients_tokens_at_once(
        app, org_client, db_session, change):
    db_session.commit()
    first = token_claims(app, org_client)
    assert (first["org_slug"], first["org_name"]) == ("acme", "Acme")
    change_by_hand(app, org_client, change)
    assert (token_claims(app, org_client)["org_slug"], token_claims(app, org_client)["org_name"]) != ("acme", "Acme")


def token_claims(app: Flask, client: Machine) -> dict:
    response = token_request(app, client.client_id, DEFAULT_CLIENT_SECRET)
    assert response.status_code == 200, response.get_json()
    return json.loads(base64.urlsafe_b64decode(response.get_json()["access_token"].split(".")[1] + "=="))


def test_a_rolled_back_change_is_not_published(app, machine, db_session):
    db_session.commit()
    with app.app_context():
        client = clients.require_client(db.session, machine.client_id)
        clients.update_client(db.session, actor=Actor(user=None), client=client, name="Rolled back")
        db.session.rollback()
        assert CHANGED_CLIENTS_KEY not in db.session.info


def test_a_change_made_by_another_process_applies_at_once(database_url, machine, db_session):
    """Two apps on one database and one Redis stand for two server workers or two instances."""
    db_session.commit()
    shared = make_settings(database_url, CLIENT_CACHE_SECONDS=30, REDIS_URL=SHARED_REDIS_URL)
    first, other = create_app(shared), create_app(shared)
    try:
        assert token_request(first, machine.client_id, DEFAULT_CLIENT_SECRET).status_code == 200
        assert token_request(first, machine.client_id, DEFAULT_CLIENT_SECRET).status_code == 200  # a cache hit
        change(other, machine.client_id,
               lambda c: clients.rotate_client_secret(db.session, actor=Actor(user=None), client=c))
        assert token_request(first, machine.client_id, DEFAULT_CLIENT_SECRET).status_code == 401
    finally:
        for instance in (first, other):
            with instance.app_context():
                db.engine.dispose()


@pytest.mark.parametrize("change", [CLIENT_CHANGES["attribute set"], CLIENT_CHANGES["UPDATE statement"]],
                         ids=["attribute set", "UPDATE statement"])
def test_a_change_made_without_the_services_by_another_process_applies_at_once(database_url, machine, db_session,
                                                                               change):
    """Two apps on one database and one Redis: a change no service made, committed by one, reaches the other."""
    db_session.commit()
    shared = make_settings(database_url, CLIENT_CACHE_SECONDS=30, REDIS_URL=SHARED_REDIS_URL)
    first, other = create_app(shared), create_app(shared)
    try:
        assert still_has_invoices_write(first, machine)
        assert still_has_invoices_write(first, machine)  # a cache hit
        change_by_hand(other, machine, change)
        assert not still_has_invoices_write(first, machine)
    finally:
        for instance in (first, other):
            with instance.app_context():
                db.engine.dispose()


def shared_versions(prefix: str) -> RedisClientVersions:
    """A process's view of the client versions, on its own feed as in create_app."""
    return RedisClientVersions(Redis.from_url(SHARED_REDIS_URL), prefix, shared_feed(prefix))


def test_a_published_change_reaches_every_subscribed_process():
    prefix = f"test-{uuid.uuid4().hex}"
    first, other = shared_versions(prefix), shared_versions(prefix)
    before = first.current("client-a")
    assert before is not None and before == first.current("client-a")
    assert first.registry() == (before[0], 0)

    other.bump(["client-a"])
    # Delivery takes as long as Redis's write to first's socket (microseconds on one host).
    wait_for(lambda: first.current("client-a") != before, "the change never reached the other process")
    assert first.current("client-a") == (before[0], 1)
    assert first.current("client-b") == (before[0], 0)  # other clients are unaffected
    assert first.registry() == (before[0], 1)

    # One change to several clients (an organization renamed or deleted) is one message naming each.
    other.bump(["client-b", "client-c"])
    wait_for(lambda: first.registry() != (before[0], 1), "the second change never reached the other process")
    assert [first.current(c) for c in ("client-a", "client-b", "client-c", "client-d")] == \
           [(before[0], 1), (before[0], 1), (before[0], 1), (before[0], 0)]
    assert first.registry() == (before[0], 2)


def test_a_new_subscription_trusts_nothing_counted_under_the_last():
    """Changes published while a process was not subscribed are lost to it: after the connection
    breaks it reads the database until it subscribes again, and the new subscription makes every
    earlier version stale."""
    prefix = f"test-{uuid.uuid4().hex}"
    clock = Clock()
    feed = shared_feed(prefix, clock)
    versions = RedisClientVersions(Redis.from_url(SHARED_REDIS_URL), prefix, feed)
    before = versions.current("client-a")
    versions.bump(["client-a"])
    wait_for(lambda: versions.current("client-a") == (before[0], 1), "the change never arrived")
    break_subscription(prefix)

    assert versions.current("client-a") is None
    assert versions.registry() is None
    clock.now += feed.RESUBSCRIBE_SECONDS
    after = versions.current("client-a")
    assert after is not None and after[0] != before[0]
    assert after[1] == 0 and versions.registry() == (after[0], 0)


def test_the_cache_is_off_in_testing_unless_asked_for(database_url):
    assert make_settings(database_url).client_cache_seconds == 0
    assert make_settings(database_url, ENV="development").client_cache_seconds == 30
    assert make_settings(database_url, CLIENT_CACHE_SECONDS=5).client_cache_seconds == 5


def test_client_cache_seconds_is_read_from_the_environment():
    from app.config import Settings
    assert Settings.from_env({"CLIENT_CACHE_SECONDS": "12"}).CLIENT_CACHE_SECONDS == 12
    assert Settings.from_env({}).CLIENT_CACHE_SECONDS is None
