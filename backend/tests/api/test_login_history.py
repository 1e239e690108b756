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



def test_api_key_uses_and_refusals_are_in_the_login_history(api, db_session, user, login):
    """Issue 15 §4: the history names the method api_key; a use is recorded as often as the key's last
    use (once a minute), every refused presentation of the key (wrong secret, revoked) each time."""
    row, key = factories.api_key(db_session, user)
    forged = key[:-4] + ("BBBB" if key.endswith("AAAA") else "AAAA")

    def present(presented: str) -> int:
        return api.get("/api/v1/users/me", headers={"X-API-Key": presented, **SCRIPT},
                       environ_base={"REMOTE_ADDR": "192.0.2.8"}).status

    assert [present(key), present(key), present(forged)] == [200, 200, 401]
    assert api.delete(f"/api/v1/users/me/api-keys/{row.id}", token=login(user)).status == 200
    assert present(key) == 401

    response = api.get("/api/v1/users/me/login-history", token=login(user))

    assert [r for r in rows(response.data) if r[1] == "api_key"] == [
        ("failure", "api_key", "api_key_revoked", "192.0.2.8", SCRIPT["User-Agent"]),
        ("failure", "api_key", "bad_api_key", "192.0.2.8", SCRIPT["User-Agent"]),
        ("success", "api_key", None, "192.0.2.8", SCRIPT["User-Agent"])]
