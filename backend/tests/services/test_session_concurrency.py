"""Two requests racing on one session token, against the real database.

Each request runs in its own thread with its own test client (so its own app
context, SQLAlchemy session and connection). The services make the state
change a conditional UPDATE, so exactly one request may win.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, SessionEndReason, UserSession
from app.security.tokens import hash_token
from app.services import sessions
from tests.conftest import released_together

# Each round is a fresh session; several rounds make an unlucky interleaving likely.
ROUNDS = 10


def race(app, method: str, path: str, token: str) -> list:
    """Send the same request from two threads released together; returns both responses."""
    def send(client):
        return client.open(path, method=method, headers={"Authorization": f"Bearer {token}"})
    return released_together(app, [send, send])


@pytest.fixture
def start_session(db_session, user, settings):
    def start() -> tuple[UserSession, str]:
        issued = sessions.start_session(db_session, user=user, settings=settings)
        # Commit before the threads start: they must see the row, and on SQLite
        # an open transaction here would hold the write lock they queue for.
        db_session.commit()
        return issued.session, issued.token
    return start


def count_events(db_session, action: str, session_id) -> int:
    return db_session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == action, AuditEvent.target_id == str(session_id)))


def test_refresh_same_token_concurrently_exactly_one_wins(app, api, db_session, start_session):
    for _ in range(ROUNDS):
        session, token = start_session()

        responses = race(app, "POST", "/api/v1/auth/sessions/refresh", token)

        assert sorted(r.status_code for r in responses) == [200, 401]
        [winner] = [r for r in responses if r.status_code == 200]
        new_token = winner.get_json()["data"]["token"]
        db_session.expire_all()
        assert db_session.get(UserSession, session.id).token_hash == hash_token(new_token)
        assert count_events(db_session, "auth.session_refreshed", session.id) == 1
        assert api.get("/api/v1/auth/me", token=new_token).status == 200
        assert api.get("/api/v1/auth/me", token=token).status == 401


def test_logout_same_token_concurrently_exactly_one_wins(app, api, db_session, start_session):
    for _ in range(ROUNDS):
        session, token = start_session()

        responses = race(app, "POST", "/api/v1/auth/logout", token)

        assert sorted(r.status_code for r in responses) == [200, 401]
        [loser] = [r for r in responses if r.status_code == 401]
        assert loser.get_json()["error"]["type"] == "AUTHENTICATION_ERROR"
        db_session.expire_all()
        row = db_session.get(UserSession, session.id)
        assert row.ended_at is not None
        assert row.end_reason == SessionEndReason.LOGOUT
        assert count_events(db_session, "auth.logout", session.id) == 1
        assert api.get("/api/v1/auth/me", token=token).status == 401
