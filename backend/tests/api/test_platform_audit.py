"""GET /api/v1/admin/audit-events: the whole platform's audit trail, with the organization audit's
filters plus organization_id and the target."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest

from tests.factories import UserFactory, session_token
# The organization audit's fixtures: both trails are read over the same events.
from tests.services.test_audit import T0, acme, globex, record  # noqa: F401 (fixtures)

TRAIL = "/api/v1/admin/audit-events"


@pytest.fixture
def admin_token(db_session) -> str:
    return session_token(UserFactory(is_platform_admin=True))


@pytest.fixture
def events(db_session, acme, globex, owner):
    return {
        "acme_member": record(db_session, acme, "membership.added", minutes=1, user=owner, target_type="user",
                              target_id="u-1"),
        "globex_client": record(db_session, globex, "client.created", minutes=2, target_type="client",
                                target_id="c-1"),
        "platform_user": record(db_session, None, "user.suspended", minutes=3, target_type="user", target_id="u-1"),
    }


def trail(**query: str) -> str:
    return f"{TRAIL}?{urlencode(query)}"


def ids(response) -> list[str]:
    return [item["id"] for item in response.data]


def in_window(**query: str) -> str:
    return trail(since=T0.isoformat(), until=(T0 + timedelta(hours=1)).isoformat(), **query)


def test_shows_every_organizations_events_and_the_platforms_newest_first(api, admin_token, events):
    response = api.get(in_window(), token=admin_token)

    assert response.status == 200
    assert ids(response) == [str(events[k].id) for k in ("platform_user", "globex_client", "acme_member")]
    assert [item["organization_id"] for item in response.data] == [
        None, str(events["globex_client"].organization_id), str(events["acme_member"].organization_id)]


def test_filters_by_organization(api, admin_token, events, globex):
    response = api.get(in_window(organization_id=str(globex.id)), token=admin_token)

    assert ids(response) == [str(events["globex_client"].id)]


@pytest.mark.parametrize(("query", "expected"), [
    ({"target_type": "user"}, ["platform_user", "acme_member"]),
    ({"target_type": "user", "target_id": "u-1"}, ["platform_user", "acme_member"]),
    ({"target_id": "c-1"}, ["globex_client"]),
    ({"target_type": "client", "target_id": "u-1"}, []),
])
def test_filters_by_target(api, admin_token, events, query, expected):
    response = api.get(in_window(**query), token=admin_token)

    assert ids(response) == [str(events[k].id) for k in expected]


def test_keeps_the_organization_audits_filters(api, admin_token, events, owner):
    by_prefix = api.get(in_window(action="membership."), token=admin_token)
    by_actor = api.get(in_window(actor=str(owner.id)), token=admin_token)
    by_time = api.get(trail(since=(T0 + timedelta(minutes=2)).isoformat(),
                            until=(T0 + timedelta(minutes=2)).isoformat()), token=admin_token)

    assert ids(by_prefix) == [str(events["acme_member"].id)]
    assert ids(by_actor) == [str(events["acme_member"].id)]
    assert ids(by_time) == [str(events["globex_client"].id)]


@pytest.mark.parametrize("query", [{"organization_id": "acme"}, {"target_type": "x" * 33},
                                   {"since": "2020-03-01T12:00:00Z", "until": "2020-03-01T11:00:00Z"},
                                   {"action": "Not An Action"}])
def test_invalid_filters_are_422(api, admin_token, query):
    assert api.get(trail(**query), token=admin_token).status == 422


def test_admin_actions_land_in_the_trail(api, db_session, admin_token):
    target = UserFactory()

    api.post(f"/api/v1/admin/users/{target.id}/suspend", token=admin_token)

    response = api.get(trail(target_type="user", target_id=str(target.id)), token=admin_token)
    assert [item["action"] for item in response.data] == ["user.suspended"]
