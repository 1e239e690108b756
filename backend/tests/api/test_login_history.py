"""GET /api/v1/users/me/login-history and /api/v1/admin/users/<id>/login-history: sign-ins and failed
attempts, read from the audit trail."""

from __future__ import annotations

import pytest

from tests import factories
from tests.conftest import make_settings

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}
SCRIPT = {"User-Agent": "curl/8.5.0"}


@pytest.fixture
def settings(database_url):
    return make_settings(database_url, RATELIMIT_LOGIN="1000 per minute", LOGIN_MAX_FAILURES=2)


def sign_in(api, user, *, password: str = factories.DEFAULT_PASSWORD, headers: dict, ip: str):
    return api.post("/api/v1/auth/login", json={"email": user.email, "password": password}, headers=headers,
                    environ_base={"REMOTE_ADDR": ip})


@pytest.fixture
def history(api, user):
    """A failure, a lock-out and a success of `user`, from two machines; and someone else's success."""
    assert sign_in(api, user, password="not my password", headers=SCRIPT, ip="203.0.113.9").status == 401
    assert sign_in(api, user, password="not my password", headers=SCRIPT, ip="203.0.113.9").status == 423
    response = sign_in(api, user, headers=BROWSER, ip="198.51.100.7")
    assert response.status == 200
    assert sign_in(api, factories.UserFactory(), headers=BROWSER, ip="192.0.2.1").status == 200
    return response.data["token"]


def rows(data: list[dict]) -> list[tuple]:
    return [(r["result"], r["method"], r["reason"], r["ip"], r["user_agent"]) for r in data]


EXPECTED = [
    ("success", "password", None, "198.51.100.7", BROWSER["User-Agent"]),
    ("failure", "password", "bad_password_locked", "203.0.113.9", SCRIPT["User-Agent"]),
    ("failure", "password", "bad_password", "203.0.113.9", SCRIPT["User-Agent"]),
]


def test_own_login_history_lists_successes_and_failures_newest_first(api, history):
    response = api.get("/api/v1/users/me/login-history", token=history)

    assert response.status == 200
    assert rows(response.data) == EXPECTED
    assert response.body["meta"] == {"page": 1, "per_page": 20, "total": 3}
    assert all(set(r) == {"id", "occurred_at", "result", "method", "reason", "ip", "user_agent"}
               for r in response.data)


def test_own_login_history_paginates(api, history):
    response = api.get("/api/v1/users/me/login-history?per_page=2&page=2", token=history)

    assert rows(response.data) == EXPECTED[2:]
    assert response.body["meta"] == {"page": 2, "per_page": 2, "total": 3}


def test_own_login_history_needs_a_session(api):
    assert api.get("/api/v1/users/me/login-history").status == 401


def test_admin_reads_a_users_login_history(api, user, history):
    admin_token = factories.session_token(factories.UserFactory(is_platform_admin=True))

    response = api.get(f"/api/v1/admin/users/{user.id}/login-history", token=admin_token)

    assert response.status == 200 and rows(response.data) == EXPECTED

