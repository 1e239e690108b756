"""Two platform administrators suspend each other at the same moment, against the real database:
the last-administrator rule (services.platform_admin) must leave one of them active.

It proves the row lock (`_require_another_admin`'s FOR UPDATE) on PostgreSQL, where both requests
read the administrators concurrently; on SQLite every transaction begins IMMEDIATE (app/database.py),
so the two run one after the other and the test passes without the lock. CI runs it on both."""

from __future__ import annotations

from sqlalchemy import func, select

from app.models import User, UserStatus
from tests import factories
from tests.conftest import released_together

ROUNDS = 5


def suspend_each_other(app, first: User, second: User) -> list[int]:
    """Each administrator's session suspends the other, the two requests released together; the statuses."""
    def suspend(token: str, target: User):
        path = f"/api/v1/admin/users/{target.id}/suspend"  # read here: the test's session stays in this thread
        return lambda client: client.post(path, headers={"Authorization": f"Bearer {token}"}).status_code
    requests = [suspend(factories.session_token(first), second), suspend(factories.session_token(second), first)]
    factories.UserFactory._meta.sqlalchemy_session.commit()
    return released_together(app, requests)


def test_two_administrators_suspending_each_other_leave_one_active(app, db_session):
    for _ in range(ROUNDS):
        db_session.execute(User.__table__.update().values(is_platform_admin=False))
        first, second = factories.UserFactory(is_platform_admin=True), factories.UserFactory(is_platform_admin=True)

        statuses = suspend_each_other(app, first, second)

        # The loser is refused by the rule (409) or, if the winner committed before it authenticated, as a
        # suspended account whose session ended (401).
        assert sorted(statuses)[0] == 200 and sorted(statuses)[1] in (401, 409), statuses
        db_session.expire_all()
        active_admins = db_session.scalar(select(func.count()).select_from(User).where(
            User.is_platform_admin.is_(True), User.status == UserStatus.ACTIVE))
        assert active_admins == 1
