"""Failed sign-ins racing on one email's counters, against the real database.

Each request runs in its own thread with its own test client (so its own app context, SQLAlchemy
session and connection). The counters are created with INSERT ... ON CONFLICT DO NOTHING and
counted under a row lock, so the first failures of an email do not collide and none is lost.
"""

from __future__ import annotations

import threading

from sqlalchemy import select

from app.models import AuditEvent

LOGIN = "/api/v1/auth/login"
# Each round is a fresh email from a fresh address; several rounds make an unlucky interleaving likely.
ROUNDS = 5


def race(app, count: int, email: str, ip: str) -> list[int]:
    """`count` wrong passwords for `email` from `ip`, sent from threads released together; their statuses."""
    barrier = threading.Barrier(count)
    statuses: list[int] = []
    failures: list[BaseException] = []

    def send() -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=10)
            statuses.append(client.post(LOGIN, json={"email": email, "password": "not the password"},
                                        environ_base={"REMOTE_ADDR": ip}).status_code)
        except BaseException as exc:  # surfaced in the test thread below
            failures.append(exc)

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    return sorted(statuses)


def test_login_failures_at_once_are_each_counted(app, db_session, settings):
    for n in range(ROUNDS):
        email, ip = f"racer{n}@example.com", f"192.0.2.{n + 1}"

        statuses = race(app, settings.LOGIN_MAX_FAILURES, email, ip)

        assert statuses == [401] * (settings.LOGIN_MAX_FAILURES - 1) + [423]
    reasons = db_session.scalars(select(AuditEvent.details["reason"].as_string())
                                 .where(AuditEvent.action == "auth.login")).all()
    assert sorted(reasons) == sorted(["unknown_email"] * (settings.LOGIN_MAX_FAILURES - 1) * ROUNDS
                                     + ["unknown_email_locked"] * ROUNDS)
