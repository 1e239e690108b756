"""Per-client-IP rate limits on sign-in and registration."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.models import AuditEvent, LoginThrottle
from app.services import login_throttle
from tests.conftest import make_settings

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"


def attempt_login(api, **kwargs):
    """A failed sign-in for an email of its own, which therefore never reaches that email's lock."""
    return api.post(LOGIN, json={"email": f"nobody-{uuid.uuid4().hex}@example.com", "password": "not the password"},
                    **kwargs)


def attempt_register(api, n: int, **kwargs):
    return api.post(REGISTER, json={"email": f"new{n}@example.com", "password": "a long passphrase"}, **kwargs)


def assert_rate_limited(response) -> None:
    assert response.status == 429
    assert response.error_type == "RATE_LIMITED"
    assert int(response.headers["Retry-After"]) > 0


def test_login_eleventh_attempt_in_a_minute_returns_429(api, settings):
    assert settings.RATELIMIT_LOGIN == "10 per minute"
    statuses = [attempt_login(api).status for _ in range(10)]

    response = attempt_login(api)

    assert statuses == [401] * 10
    assert_rate_limited(response)


def test_login_under_the_limit_sends_no_retry_after(api):
    """RFC 9110 §10.2.3: Retry-After tells a client to wait; only a 429 should say so."""
    response = attempt_login(api)

    assert response.status == 401
    assert "Retry-After" not in response.headers


def test_login_when_rate_limited_does_not_check_credentials(api, db_session, user, settings):
    for _ in range(10):
        attempt_login(api)

    response = api.post(LOGIN, json={"email": user.email, "password": "not the password"})

    assert response.status == 429
    keys = login_throttle.keys_for(email=user.email, ip="127.0.0.1", settings=settings)
    counters = select(LoginThrottle).where(LoginThrottle.key.in_([keys.source, keys.account]))
    assert db_session.scalars(counters).all() == []
    assert db_session.scalars(select(AuditEvent).where(AuditEvent.actor_user_id == user.id)).all() == []


def test_register_sixth_attempt_in_a_minute_returns_429(api, settings):
    assert settings.RATELIMIT_REGISTER == "5 per minute"
    statuses = [attempt_register(api, n).status for n in range(5)]

    response = attempt_register(api, 5)

    assert statuses == [201] * 5
    assert_rate_limited(response)


def test_login_limit_does_not_apply_to_another_client_ip(api):
    for _ in range(11):
        attempt_login(api)

    response = attempt_login(api, environ_base={"REMOTE_ADDR": "10.0.0.2"})

    assert response.status == 401


def test_register_limit_does_not_apply_to_another_client_ip(api):
    for n in range(6):
        attempt_register(api, n)

    response = attempt_register(api, 6, environ_base={"REMOTE_ADDR": "10.0.0.2"})

    assert response.status == 201


def test_login_limit_ignores_x_forwarded_for_without_trusted_proxy(api):
    for n in range(10):
        attempt_login(api, headers={"X-Forwarded-For": f"203.0.113.{n}"})

    response = attempt_login(api, headers={"X-Forwarded-For": "203.0.113.99"})

    assert_rate_limited(response)


def test_login_without_trusted_proxy_audits_socket_address(api, db_session):
    attempt_login(api, headers={"X-Forwarded-For": "203.0.113.5"}, environ_base={"REMOTE_ADDR": "10.0.0.9"})

    assert db_session.scalar(select(AuditEvent.ip)) == "10.0.0.9"


class TestBehindOneTrustedProxy:
    """TRUSTED_PROXY_COUNT=1: the proxy's appended X-Forwarded-For entry is the client."""

    PROXY = {"REMOTE_ADDR": "10.0.0.1"}

    @pytest.fixture
    def settings(self, database_url):
        return make_settings(database_url, TRUSTED_PROXY_COUNT=1)

    def test_login_limit_is_per_forwarded_client(self, api):
        for _ in range(10):
            attempt_login(api, headers={"X-Forwarded-For": "203.0.113.5"}, environ_base=self.PROXY)

        limited = attempt_login(api, headers={"X-Forwarded-For": "203.0.113.5"}, environ_base=self.PROXY)
        other_client = attempt_login(api, headers={"X-Forwarded-For": "203.0.113.6"}, environ_base=self.PROXY)

        assert_rate_limited(limited)
        assert other_client.status == 401

    def test_login_limit_ignores_entries_the_client_prepended(self, api):
        for n in range(10):
            attempt_login(api, headers={"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.5"},
                          environ_base=self.PROXY)

        response = attempt_login(api, headers={"X-Forwarded-For": "198.51.100.99, 203.0.113.5"},
                                 environ_base=self.PROXY)

        assert_rate_limited(response)

    def test_login_audits_forwarded_client_address(self, api, db_session):
        attempt_login(api, headers={"X-Forwarded-For": "203.0.113.5"}, environ_base=self.PROXY)

        assert db_session.scalar(select(AuditEvent.ip)) == "203.0.113.5"


# --- limits no hook would apply ------------------------------------------------------------------
# create_app removes Flask-Limiter's per-request hook (app._init_without_request_hooks): only a route's
# own decorator applies its limit. A limit declared for a whole blueprint, as a default or for the
# whole application would limit nothing, nor would a route limit deducted only when `deduct_when`
# says so (the hook deducts it), so the app refuses to start with one.


@pytest.fixture
def limit_manager(monkeypatch):
    """The shared limiter's declarations, restored after the test."""
    from app.extensions import limiter

    manager = limiter.limit_manager
    for name in ("_blueprint_limits", "_default_limits", "_application_limits"):
        monkeypatch.setattr(manager, name, type(getattr(manager, name))(getattr(manager, name)))
    # Per function, a set a new limit is added to: copied one level deeper.
    monkeypatch.setattr(manager, "_decorated_limits",
                        {name: type(limits)(limits) for name, limits in manager._decorated_limits.items()})
    monkeypatch.setattr(limiter, "_marked_for_limiting", set(limiter._marked_for_limiting))
    return limiter


def test_app_with_a_blueprint_limit_refuses_to_start_naming_it(limit_manager, settings):
    from app import create_app
    from app.oauth.endpoints import bp

    limit_manager.limit("5 per minute")(bp)

    with pytest.raises(RuntimeError, match="blueprint oauth: 5 per 1 minute"):
        create_app(settings)


@pytest.mark.parametrize("kind", ["default", "application"])
def test_app_with_a_default_or_application_limit_refuses_to_start_naming_it(limit_manager, settings, kind):
    from flask_limiter import ApplicationLimit, Limit

    from app import create_app

    manager = limit_manager.limit_manager
    if kind == "default":
        manager.set_default_limits([Limit("7 per hour").bind(limit_manager)])
    else:
        manager.set_application_limits([ApplicationLimit("7 per hour").bind(limit_manager)])

    with pytest.raises(RuntimeError, match=f"{kind} 7 per 1 hour"):
        create_app(settings)


def test_app_with_a_route_limit_deducted_after_the_answer_refuses_to_start_naming_it(limit_manager, settings):
    """A route limit with `deduct_when` is checked by its decorator but deducted by the removed hook:
    it would never count a request."""
    from app import create_app
    from app.oauth.endpoints import token

    limit_manager.limit("3 per minute", deduct_when=lambda response: response.status_code == 401)(token)

    with pytest.raises(RuntimeError, match=r"app\.oauth\.endpoints\.token\S*: 3 per minute with deduct_when"):
        create_app(settings)


def test_a_limit_on_a_function_a_view_calls_is_found_too(limit_manager, settings):
    """Flask-Limiter lets any function a view calls carry a limit; deduct_when there is as unapplied."""
    from app import create_app

    def helper() -> None:
        pass

    limit_manager.limit("4 per minute", deduct_when=lambda response: True)(helper)

    with pytest.raises(RuntimeError, match="helper: 4 per minute with deduct_when"):
        create_app(settings)


def test_a_limit_whose_value_reads_the_request_is_not_evaluated_at_startup(limit_manager, settings):
    from flask import request

    from app import create_app
    from app.oauth.endpoints import token

    limit_manager.limit(lambda: "10/minute" if request.headers.get("X-Trusted") else "3/minute")(token)

    assert create_app(settings).view_functions["oauth.token"]


def test_app_as_declared_starts_with_every_limit_on_its_route(app):
    from app.extensions import limiter

    manager = limiter.limit_manager
    assert manager.default_limits == [] and manager.application_limits == []
    assert all(manager.blueprint_limits(app, name) == [] for name in app.blueprints)
