"""GET /api/v1/organizations/<org_id>/audit-events: an organization's audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from app.api.openapi import build_spec
from app.models import AuditEvent, Organization, Role, User
from app.services import audit
from app.services.actor import Actor
from tests.factories import UserFactory, add_member, create_organization, session_token

# Events are placed around T0, in the past: create_organization's org.created (recorded now) is the newest.
T0 = datetime(2020, 3, 1, 12, 0, tzinfo=UTC)
ITEM_FIELDS = {"id", "occurred_at", "action", "result", "actor_user_id", "target_type", "target_id", "ip",
               "user_agent", "request_id", "details"}


@pytest.fixture
def acme(db_session, owner) -> Organization:
    return create_organization(db_session, owner=owner, slug="acme")


@pytest.fixture
def token(owner) -> str:
    return session_token(owner)


def trail(organization: Organization, **query: str) -> str:
    path = f"/api/v1/organizations/{organization.id}/audit-events"
    return f"{path}?{urlencode(query)}" if query else path


def record(db_session, organization: Organization | None, action: str, *, minutes: int = 0,
           user: User | None = None, **fields) -> AuditEvent:
    """An event `minutes` after T0, committed."""
    event = audit.record_event(db_session, actor=Actor(user=user, ip="203.0.113.9", user_agent="agent/1.0",
                                                       request_id="req-1"),
                               action=action, organization_id=organization.id if organization else None, **fields)
    event.occurred_at = T0 + timedelta(minutes=minutes)
    db_session.commit()
    return event


def actions(response) -> list[str]:
    return [item["action"] for item in response.data]


# --- who may read it ---

def test_without_session_is_401(api, acme):
    response = api.get(trail(acme))
    assert response.status == 401
    assert response.error_type == "AUTHENTICATION_ERROR"


def test_member_without_audit_read_is_403(api, db_session, acme):
    member = UserFactory()
    add_member(db_session, acme, member, "member")
    response = api.get(trail(acme), token=session_token(member))
    assert response.status == 403
    assert response.error_type == "PERMISSION_DENIED"


def test_custom_role_with_audit_read_may_read(api, db_session, acme):
    db_session.add(Role(organization_id=acme.id, name="auditor", permissions=["audit:read"]))
    db_session.commit()
    auditor = UserFactory()
    add_member(db_session, acme, auditor, "auditor")
    assert api.get(trail(acme), token=session_token(auditor)).status == 200


def test_owner_of_another_organization_is_404(api, db_session, acme):
    stranger = UserFactory()
    create_organization(db_session, owner=stranger, slug="globex")
    response = api.get(trail(acme), token=session_token(stranger))
    assert response.status == 404
    assert response.error_type == "NOT_FOUND"


# --- what it shows ---

def test_lists_the_organizations_events_only_newest_first(api, db_session, acme, owner, token):
    globex = create_organization(db_session, owner=UserFactory(), slug="globex")
    record(db_session, acme, "client.created", minutes=1, user=owner, target_type="client", target_id="c-1",
           details={"name": "Billing"})
    record(db_session, acme, "client.updated", minutes=2)
    record(db_session, globex, "client.created", minutes=3)
    record(db_session, None, "auth.login", minutes=4, user=owner)

    response = api.get(trail(acme), token=token)

    assert response.status == 200
    assert response.body["meta"] == {"page": 1, "per_page": 20, "total": 3}
    assert actions(response) == ["org.created", "client.updated", "client.created"]
    item = response.data[2]
    assert set(item) == ITEM_FIELDS
    expected = {"result": "success", "actor_user_id": str(owner.id), "target_type": "client", "target_id": "c-1",
                "ip": "203.0.113.9", "user_agent": "agent/1.0", "request_id": "req-1", "details": {"name": "Billing"}}
    assert {key: item[key] for key in expected} == expected
    assert datetime.fromisoformat(item["occurred_at"]) == T0 + timedelta(minutes=1)


def test_is_paginated(api, db_session, acme, token):
    made = [record(db_session, acme, "client.updated", minutes=-m) for m in range(1, 4)]
    response = api.get(trail(acme, page="2", per_page="2"), token=token)
    assert response.body["meta"] == {"page": 2, "per_page": 2, "total": 4}
    assert [item["id"] for item in response.data] == [str(e.id) for e in made[1:3]]


def test_changes_through_the_organization_api_appear_in_its_trail(api, db_session, acme, token):
    created = api.post(f"/api/v1/organizations/{acme.id}/clients", token=token, json={
        "name": "Nightly export", "client_type": "confidential", "grant_types": ["client_credentials"],
        "scopes": ["reports:read"]}).data

    response = api.get(trail(acme, action="client."), token=token)

    [item] = response.data
    assert (item["action"], item["target_id"]) == ("client.created", created["client_id"])
    assert created["client_secret"] not in str(item)


# --- filters ---

def test_filters_by_exact_action(api, db_session, acme, token):
    record(db_session, acme, "membership.added")
    record(db_session, acme, "membership.removed")
    assert actions(api.get(trail(acme, action="membership.added"), token=token)) == ["membership.added"]


def test_filters_by_action_prefix_ending_in_a_dot(api, db_session, acme, token):
    record(db_session, acme, "membership.added", minutes=1)
    record(db_session, acme, "membership.removed", minutes=2)
    record(db_session, acme, "role.created", minutes=3)
    response = api.get(trail(acme, action="membership."), token=token)
    assert actions(response) == ["membership.removed", "membership.added"]
    assert response.body["meta"]["total"] == 2


def test_filters_by_actor(api, db_session, acme, token):
    someone = UserFactory()
    record(db_session, acme, "client.created", user=someone)
    record(db_session, acme, "client.updated")
    response = api.get(trail(acme, actor=str(someone.id)), token=token)
    assert actions(response) == ["client.created"]
    assert response.data[0]["actor_user_id"] == str(someone.id)


def test_filters_by_since_and_until_inclusive(api, db_session, acme, token):
    for minute in range(5):
        record(db_session, acme, f"step.m{minute}", minutes=minute)
    response = api.get(trail(acme, since="2020-03-01T12:01:00Z", until="2020-03-01T14:03:00+02:00"), token=token)
    assert actions(response) == ["step.m3", "step.m2", "step.m1"]


def test_until_before_since_is_422(api, acme, token):
    response = api.get(trail(acme, since="2020-03-01T12:00:00Z", until="2020-03-01T11:59:59Z"), token=token)
    assert response.status == 422
    assert response.body["error"]["details"] == {"until": ["Must not be before since."]}


@pytest.mark.parametrize("query", [
    pytest.param({"since": "2020-03-01T12:00:00"}, id="naive-since"),
    pytest.param({"until": "yesterday"}, id="not-a-datetime"),
    pytest.param({"actor": "not-a-uuid"}, id="actor-not-a-uuid"),
    pytest.param({"action": "Client.Created"}, id="action-upper-case"),
    pytest.param({"action": "client.%"}, id="action-wildcard"),
    pytest.param({"action": "x" * 65}, id="action-too-long"),
    pytest.param({"per_page": "101"}, id="per-page-too-big"),
    pytest.param({"organization_id": "00000000-0000-0000-0000-000000000000"}, id="unknown-parameter"),
])
def test_bad_query_is_422(api, acme, token, query):
    response = api.get(trail(acme, **query), token=token)
    assert response.status == 422
    assert response.error_type == "VALIDATION_ERROR"
    assert set(response.body["error"]["details"]) == {"actor" if "actor" in query else next(iter(query))}


# --- OpenAPI ---

def test_audit_route_is_documented_with_its_filters(app):
    operation = build_spec(app)["paths"]["/api/v1/organizations/{org_id}/audit-events"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"org_id", "page", "per_page", "action", "actor", "since", "until"} <= names
    assert {"401", "403", "404", "422"} <= set(operation["responses"])
