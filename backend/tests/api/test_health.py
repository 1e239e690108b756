"""GET /api/health: 200 with the status of each dependency, 503 when a configured one is down.

The "down" cases point at a real closed port (1 on the loopback interface):
the client really fails to connect, nothing is mocked.
"""

from __future__ import annotations

import os

import pytest

from app import create_app
from app.extensions import db
from tests.conftest import assert_envelope, make_settings

CLOSED_REDIS_URL = "redis://127.0.0.1:1/0"
CLOSED_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/x"
HEALTH = "/api/health"


@pytest.fixture
def build_client():
    """Clients for apps with settings of their own; their engines are disposed afterwards.

    These apps never write, so the table cleanup of the `app` fixture is not needed
    (and would fail against an unreachable database).
    """
    apps = []

    def build(settings):
        app = create_app(settings)
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def _redis_expected() -> str:
    return "ok" if os.environ.get("REDIS_URL") else "not_configured"


def test_get_health_with_reachable_stores_returns_ok(client):
    response = client.get(HEALTH)

    body = response.get_json()
    assert response.status_code == 200
    assert_envelope(body, 200, response.headers)
    assert body["data"] == {"status": "ok", "components": {"database": "ok", "redis": _redis_expected()}}


def test_get_health_without_redis_url_reports_redis_not_configured(build_client, database_url):
    client = build_client(make_settings(database_url, REDIS_URL=None))

    response = client.get(HEALTH)

    assert response.status_code == 200
    assert response.get_json()["data"]["components"] == {"database": "ok", "redis": "not_configured"}


def test_get_health_with_unreachable_redis_returns_service_unavailable(build_client, database_url):
    client = build_client(make_settings(database_url, REDIS_URL=CLOSED_REDIS_URL))

    response = client.get(HEALTH)

    body = response.get_json()
    assert response.status_code == 503
    assert_envelope(body, 503, response.headers)
    assert body["error"]["type"] == "SERVICE_UNAVAILABLE"
    components = {"database": "ok", "redis": "error"}
    assert body["data"] == {"status": "degraded", "components": components}
    assert body["error"]["details"] == {"components": components}


def test_get_health_with_unreachable_database_returns_service_unavailable(build_client):
    client = build_client(make_settings(CLOSED_DATABASE_URL))

    response = client.get(HEALTH)

    body = response.get_json()
    assert response.status_code == 503
    assert_envelope(body, 503, response.headers)
    assert body["error"]["type"] == "SERVICE_UNAVAILABLE"
    components = {"database": "error", "redis": _redis_expected()}
    assert body["data"] == {"status": "degraded", "components": components}
    assert body["error"]["details"] == {"components": components}


def test_get_health_with_unreachable_dependency_does_not_leak_connection_detail(build_client):
    client = build_client(make_settings(CLOSED_DATABASE_URL, REDIS_URL=CLOSED_REDIS_URL))

    response = client.get(HEALTH)

    text = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "127.0.0.1" not in text and "refused" not in text.lower()
