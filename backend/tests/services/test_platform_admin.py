"""services.platform_admin: the rules that keep the platform administrable, whoever acts (an
administrator through the API, or the operator at the command line)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import errors
from app.cli import cli_actor
from app.models import LoginThrottle, User, UserStatus
from app.models.base import utcnow
from app.services import login_throttle, platform_admin
from app.stores.denylist import MemoryDenylist
from tests.factories import UserFactory


@pytest.fixture
def root(db_session) -> User:
    """The only active platform administrator (another one is suspended)."""
    UserFactory(is_platform_admin=True, status=UserStatus.SUSPENDED)
    return UserFactory(is_platform_admin=True)


REMOVALS = {
    "demote": lambda db, user: platform_admin.update_user(db, actor=cli_actor(), user_id=user.id,
                                                          is_platform_admin=False),
    "suspend": lambda db, user: platform_admin.suspend_user(db, actor=cli_actor(), user_id=user.id,
                                                            denylist=MemoryDenylist()),
    "delete": lambda db, user: platform_admin.delete_user(db, actor=cli_actor(), user_id=user.id,
                                                          denylist=MemoryDenylist()),
}


@pytest.mark.parametrize("removal", REMOVALS, ids=list(REMOVALS))
def test_last_active_platform_admin_cannot_be_removed(db_session, root, removal):
    with pytest.raises(errors.Conflict, match="last active platform administrator"):
        REMOVALS[removal](db_session, root)


@pytest.mark.parametrize("removal", REMOVALS, ids=list(REMOVALS))
def test_a_platform_admin_can_be_removed_while_another_is_active(db_session, root, removal):
    UserFactory(is_platform_admin=True)
    root_id = root.id

    REMOVALS[removal](db_session, root)
    db_session.commit()

    db_session.expire_all()
    removed = db_session.get(User, root_id)
    left = None if removed is None else (removed.is_platform_admin, removed.status)
    assert left == {"demote": (False, UserStatus.ACTIVE), "suspend": (True, UserStatus.SUSPENDED),
                    "delete": None}[removal]


@pytest.mark.parametrize("removal", REMOVALS, ids=list(REMOVALS))
def test_an_administrator_cannot_remove_themselves(db_session, root, removal):
    UserFactory(is_platform_admin=True)
    as_root = cli_actor().as_user(root)
    actions = {
        "demote": lambda: platform_admin.update_user(db_session, actor=as_root, user_id=root.id,
                                                     is_platform_admin=False),
        "suspend": lambda: platform_admin.suspend_user(db_session, actor=as_root, user_id=root.id,
                                                       denylist=MemoryDenylist()),
        "delete": lambda: platform_admin.delete_user(db_session, actor=as_root, user_id=root.id,
                                                     denylist=MemoryDenylist()),
    }
    with pytest.raises(errors.Conflict, match="You cannot"):
        actions[removal]()


def test_unlock_clears_the_emails_counters_from_every_address_and_no_one_elses(db_session, settings):
    grace, alan = UserFactory(), UserFactory()
    now = utcnow()
    for email, ip in ((grace.email, "198.51.100.7"), (grace.email, "2001:db8::1"), (alan.email, "198.51.100.7")):
        login_throttle.count_failure(db_session, keys=login_throttle.keys_for(email=email, ip=ip, settings=settings),
                                     settings=settings, now=now)

    cleared = platform_admin.unlock_user(db_session, actor=cli_actor(), user_id=grace.id, settings=settings)

    assert cleared == 3  # grace's account counter and one per address
    alan_keys = login_throttle.keys_for(email=alan.email, ip="198.51.100.7", settings=settings)
    assert set(db_session.scalars(select(LoginThrottle.key))) == {alan_keys.account, alan_keys.source}
