"""services.audit.list_events: an organization's audit trail, scoped, filtered, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app import errors
from app.models import AuditEvent, Organization, User
from app.services import audit
from app.services.actor import Actor
from tests.factories import UserFactory, create_organization

# Events are placed around T0, in the past: create_organization's org.created (recorded now) is the newest.
T0 = datetime(2020, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def acme(db_session, owner) -> Organization:
    return create_organization(db_session, owner=owner, slug="acme")


@pytest.fixture
def globex(db_session) -> Organization:
    return create_organization(db_session, owner=UserFactory(), slug="globex")


def record(db_session, organization: Organization | None, action: str, *, minutes: int = 0,
           user: User | None = None, **fields) -> AuditEvent:
    """An event `minutes` after T0 (`fields`: its target and details), committed."""
    event = audit.record_event(db_session, actor=Actor(user=user), action=action,
                               organization_id=organization.id if organization else None, **fields)
    event.occurred_at = T0 + timedelta(minutes=minutes)
    db_session.commit()
    return event


def listed(db_session, organization: Organization, **filters) -> list[AuditEvent]:
    items, _ = audit.list_events(db_session, organization_id=organization.id, page=1, per_page=100, **filters)
    return items


def test_list_events_shows_only_the_organizations_events_newest_first(db_session, acme, globex):
    older = record(db_session, acme, "client.created", minutes=1)
    newer = record(db_session, acme, "client.updated", minutes=2)
    record(db_session, globex, "client.created", minutes=3)
    record(db_session, None, "auth.login", minutes=4)

    items, total = audit.list_events(db_session, organization_id=acme.id, page=1, per_page=20)

    assert total == 3
    assert [e.action for e in items] == ["org.created", "client.updated", "client.created"]
    assert items[1:] == [newer, older]
    assert {e.organization_id for e in items} == {acme.id}


def test_list_events_pages_with_total(db_session, acme):
    made = [record(db_session, acme, "client.updated", minutes=-m) for m in range(1, 6)]

    second, total = audit.list_events(db_session, organization_id=acme.id, page=2, per_page=2)
    beyond, _ = audit.list_events(db_session, organization_id=acme.id, page=9, per_page=2)

    assert total == 6  # with org.created
    assert second == made[1:3]
    assert beyond == []


def test_list_events_filters_by_exact_action(db_session, acme):
    record(db_session, acme, "client.created")
    record(db_session, acme, "client.created_twice")
    assert [e.action for e in listed(db_session, acme, action="client.created")] == ["client.created"]


def test_list_events_action_without_trailing_dot_is_not_a_prefix(db_session, acme):
    record(db_session, acme, "client.created")
    assert listed(db_session, acme, action="client") == []


def test_list_events_filters_by_action_prefix_ending_in_a_dot(db_session, acme):
    record(db_session, acme, "membership.added", minutes=1)
    record(db_session, acme, "membership.removed", minutes=2)
    record(db_session, acme, "memberships.other", minutes=3)
    record(db_session, acme, "role.created", minutes=4)
    assert [e.action for e in listed(db_session, acme, action="membership.")] == ["membership.removed",
                                                                                 "membership.added"]


def test_list_events_action_prefix_treats_underscore_literally(db_session, acme):
    record(db_session, acme, "auth.logout_all", minutes=1)
    record(db_session, acme, "authx.logout", minutes=2)
    record(db_session, acme, "a_b.created", minutes=3)
    record(db_session, acme, "axb.created", minutes=4)
    assert [e.action for e in listed(db_session, acme, action="a_b.")] == ["a_b.created"]


def test_list_events_filters_by_actor(db_session, acme, owner):
    someone = UserFactory()
    mine = record(db_session, acme, "client.created", user=someone)
    record(db_session, acme, "client.updated")
    assert listed(db_session, acme, actor_user_id=someone.id) == [mine]
    # The owner's only event here is org.created.
    assert [e.action for e in listed(db_session, acme, actor_user_id=owner.id)] == ["org.created"]


def test_list_events_since_and_until_are_inclusive(db_session, acme):
    events = [record(db_session, acme, "client.updated", minutes=m) for m in range(5)]
    window = listed(db_session, acme, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert window == [events[3], events[2], events[1]]


def test_list_events_since_alone_and_until_alone(db_session, acme):
    before, after = record(db_session, acme, "client.created", minutes=-1), record(db_session, acme, "client.updated")
    assert listed(db_session, acme, until=T0 - timedelta(seconds=1)) == [before]
    assert after in listed(db_session, acme, since=T0) and before not in listed(db_session, acme, since=T0)


def test_list_events_compares_instants_across_timezones(db_session, acme):
    event = record(db_session, acme, "client.created")
    plus_two = timezone(timedelta(hours=2))
    at_t0_elsewhere = datetime(2020, 3, 1, 14, 0, tzinfo=plus_two)
    assert listed(db_session, acme, since=at_t0_elsewhere, until=at_t0_elsewhere) == [event]


def test_list_events_until_before_since_raises_validation_failed(db_session, acme):
    with pytest.raises(errors.ValidationFailed) as raised:
        listed(db_session, acme, since=T0, until=T0 - timedelta(microseconds=1))
    assert raised.value.details == {"until": ["Must not be before since."]}


def test_list_events_of_an_organization_without_other_events_is_its_creation_only(db_session, acme, globex):
    record(db_session, globex, "client.created")
    assert [e.action for e in listed(db_session, acme)] == ["org.created"]
