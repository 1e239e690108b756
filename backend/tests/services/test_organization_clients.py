"""services.organization_clients: an organization's members manage its clients, by permission and in it only."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from sqlalchemy import select

from app import errors
from app.models import AuditEvent, OAuthClient
from app.services import organization_clients, organizations
from app.services.actor import Actor
from app.services.organizations import Access
from tests import factories
from tests.factories import OAuthClientFactory

WEB_APP: dict[str, Any] = dict(name="Billing", client_type="confidential",
                               redirect_uris=["https://billing.example.com/callback"],
                               grant_types=["authorization_code", "refresh_token"], scopes=["openid", "profile"])

# Each service function, called as a view would call it, on the client `client_id` where it takes one.
Operation = Callable[..., Any]
OPERATIONS: dict[str, Operation] = {
    "list": lambda db, actor, access, client_id: organization_clients.list_organization_clients(
        db, access=access, page=1, per_page=20),
    "get": lambda db, actor, access, client_id: organization_clients.get_organization_client(
        db, access=access, client_id=client_id),
    "create": lambda db, actor, access, client_id: organization_clients.create_organization_client(
        db, actor=actor, access=access, **WEB_APP),
    "update": lambda db, actor, access, client_id: organization_clients.update_organization_client(
        db, actor=actor, access=access, client_id=client_id, name="Renamed"),
    "rotate": lambda db, actor, access, client_id: organization_clients.rotate_organization_client_secret(
        db, actor=actor, access=access, client_id=client_id),
    "delete": lambda db, actor, access, client_id: organization_clients.delete_organization_client(
        db, actor=actor, access=access, client_id=client_id),
}
READS = ("list", "get")
WRITES = ("create", "update", "rotate", "delete")
ON_ONE_CLIENT = ("get", "update", "rotate", "delete")


def access_of(db_session, user, org) -> Access:
    """The caller's Access as the API's guard decides it for a view needing only org:read."""
    return organizations.require_access(db_session, user=user, organization_id=org.id, permission="org:read")


def run(name: str, db_session, user, org, client_id: str = "no-such-client") -> Any:
    return OPERATIONS[name](db_session, Actor(user=user), access_of(db_session, user, org), client_id)


def clients_as_stored(db_session) -> list[tuple]:
    return db_session.execute(select(OAuthClient.client_id, OAuthClient.organization_id, OAuthClient.name,
                                     OAuthClient.client_secret_hash).order_by(OAuthClient.client_id)).all()


@pytest.fixture
def own_client(db_session, org) -> OAuthClient:
    return OAuthClientFactory(organization_id=org.id)


@pytest.fixture
def viewer(db_session, org):
    """A member whose custom role may see the organization's clients but not change them."""
    factories.create_role(db_session, org, "viewer", ["org:read", "clients:read"])
    user = factories.UserFactory(email="viewer@example.com")
    factories.add_member(db_session, org, user, "viewer")
    return user


@pytest.mark.parametrize("name", OPERATIONS)
def test_member_without_clients_permissions_is_refused_and_nothing_changes(db_session, org, member, own_client,
                                                                           name):
    before = clients_as_stored(db_session)

    with pytest.raises(errors.PermissionDenied):
        run(name, db_session, member, org, own_client.client_id)

    assert clients_as_stored(db_session) == before


@pytest.mark.parametrize("name", WRITES)
def test_write_without_clients_write_is_refused_and_nothing_changes(db_session, org, viewer, own_client, name):
    before = clients_as_stored(db_session)

    with pytest.raises(errors.PermissionDenied, match="clients:write"):
        run(name, db_session, viewer, org, own_client.client_id)

    assert clients_as_stored(db_session) == before


@pytest.mark.parametrize("name", WRITES)
def test_write_after_the_callers_role_was_lowered_is_refused(db_session, org, admin, own_client, name):
    """The Access was decided before the change: the write decides again on the role as it is now."""
    access = organizations.require_access(db_session, user=admin, organization_id=org.id, permission="clients:write")
    factories.demote_meanwhile(db_session, org, admin)

    with pytest.raises(errors.PermissionDenied):
        OPERATIONS[name](db_session, Actor(user=admin), access, own_client.client_id)


def test_reads_need_only_clients_read(db_session, org, viewer, own_client):
    items, total = run("list", db_session, viewer, org)

    assert ([c.client_id for c in items], total) == ([own_client.client_id], 1)
    assert run("get", db_session, viewer, org, own_client.client_id) is own_client


@pytest.mark.parametrize("name", ON_ONE_CLIENT)
@pytest.mark.parametrize("foreign", ["another organization's", "a platform client"])
def test_client_outside_the_organization_is_not_found_and_unchanged(db_session, org, admin, name, foreign):
    if foreign == "a platform client":
        client = OAuthClientFactory()
    else:
        other = factories.create_organization(db_session, owner=factories.UserFactory(), slug="globex")
        client = OAuthClientFactory(organization_id=other.id)
    before = clients_as_stored(db_session)

    with pytest.raises(errors.NotFound):
        run(name, db_session, admin, org, client.client_id)

    assert clients_as_stored(db_session) == before


def test_list_organization_clients_shows_only_its_own(db_session, org, admin, own_client):
    other = factories.create_organization(db_session, owner=factories.UserFactory(), slug="globex")
    OAuthClientFactory(organization_id=other.id)
    OAuthClientFactory()

    items, total = run("list", db_session, admin, org)

    assert ([c.client_id for c in items], total) == ([own_client.client_id], 1)


def test_create_organization_client_makes_it_the_organizations_and_audits_it(db_session, org, admin):
    issued = run("create", db_session, admin, org)
    db_session.commit()

    assert issued.client.organization_id == org.id and issued.client_secret
    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "client.created")).all()
    assert (event.organization_id, event.actor_user_id) == (org.id, admin.id)


def test_create_organization_client_cannot_be_first_party(db_session, org, owner):
    with pytest.raises(errors.ValidationFailed) as raised:
        organization_clients.create_organization_client(
            db_session, actor=Actor(user=owner), access=access_of(db_session, owner, org), **WEB_APP, first_party=True)

    assert "first_party" in raised.value.details


def test_admin_updates_rotates_and_deletes_the_organizations_client(db_session, org, admin, own_client):
    client_id, old_hash = own_client.client_id, own_client.client_secret_hash

    assert run("update", db_session, admin, org, client_id).name == "Renamed"
    assert run("rotate", db_session, admin, org, client_id).client.client_secret_hash != old_hash
    run("delete", db_session, admin, org, client_id)
    db_session.commit()

    assert db_session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id)) is None
