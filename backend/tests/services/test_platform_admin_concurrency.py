"""Two platform administrators suspend each other at the same moment, against the real database:
the last-administrator rule (services.platform_admin) must leave one of them active."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from app.models import User, UserStatus
from tests import factories

ROUNDS = 5


def suspend_each_other(app, first: User, second: User) -> list[int]:
    """Each administrator's session suspends the other, the two requests released together; the statuses."""
    tokens = [factories.session_token(first), factories.session_token(second)]
    targets = [second.id, first.id]
    barrier = threading.Barrier(2)
    statuses: list[int | None] = [None, None]
    failures: list[BaseException] = []

    def send(index: int) -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=10)
            statuses[index] = client.post(f"/api/v1/admin/users/{targets[index]}/suspend",
                                          headers={"Authorization": f"Bearer {tokens[index]}"}).status_code
        except BaseException as exc:  # surfaced in the test thread below
            failures.append(exc)

    factories.UserFactory._meta.sqlalchemy_session.commit()
    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    return statuses


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
