"""The DESIGN.md envelope on every /api error, X-Request-ID, and security headers."""

from __future__ import annotations

import logging
import uuid

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import create_app
from app.errors import ERROR_TYPES
from app.extensions import db
from app.models import User
from tests.api.routes import Operation, api_operations, collection_app
from tests.conftest import assert_envelope, make_settings

REGISTER = "/api/v1/auth/register"
BOOM = "/api/v1/_boom"
SECRET_DETAIL = "secret internal detail"


def _error_body(response, status: int, error_type: str) -> dict:
    """The parsed error envelope, after checking its shape, status and type."""
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert_envelope(body, status, response.headers)
    assert body["success"] is False
    assert body["error"]["type"] == error_type
    assert error_type in ERROR_TYPES
    return body


def _user_count(db_session) -> int:
    db_session.rollback()  # read what the request committed
    return db_session.scalar(select(func.count()).select_from(User))


def _boom():
    raise RuntimeError(SECRET_DETAIL)


@pytest.fixture
def boom_client(app: Flask):
    """A client for an app with one extra /api route that raises, added before the first request."""
    app.add_url_rule(BOOM, endpoint="boom", view_func=_boom)
    return app.test_client()


@pytest.fixture
def small_body_client(database_url: str):
    """A client for an app that accepts bodies of at most 100 bytes."""
    app = create_app(make_settings(database_url, MAX_CONTENT_LENGTH=100))
    yield app.test_client()
    with app.app_context():
        db.engine.dispose()


# --- werkzeug errors under /api ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api", "/api/nope", "/api/v1/nope", "/api/v1/auth/sessions/not-a-uuid"])
def test_get_unknown_api_path_returns_not_found_envelope(client, path):
    _error_body(client.get(path), 404, "NOT_FOUND")


def test_wrong_method_returns_method_not_allowed_envelope_with_allow_header(client):
    response = client.delete("/api/health")

    _error_body(response, 405, "METHOD_NOT_ALLOWED")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD"}


@pytest.mark.parametrize("operation", sorted({op.rule: op for op in api_operations(collection_app())}.values(),
                                             key=lambda op: op.rule), ids=lambda op: op.rule)
def test_options_on_an_api_path_is_a_method_not_allowed_envelope(client, operation):
    """No CORS applies under /api: OPTIONS is a 405 in the envelope, with the methods the path
    answers (RFC 9110 §15.5.6), not Flask's empty text/html 200 (issue 12, finding 10)."""
    response = client.options(operation.sample_url)

    _error_body(response, 405, "METHOD_NOT_ALLOWED")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == operation.allowed - {"OPTIONS"}


def test_body_over_max_content_length_returns_payload_too_large_envelope(small_body_client, db_session):
    body = {"email": "big@example.com", "password": "correct horse battery staple", "name": "x" * 200}

    response = small_body_client.post(REGISTER, json=body)

    _error_body(response, 413, "PAYLOAD_TOO_LARGE")
    assert _user_count(db_session) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_post_non_json_body_returns_unsupported_media_type_envelope(client, db_session, content_type):
    response = client.post(REGISTER, data="email=a@example.com&password=x", content_type=content_type)

    _error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert _user_count(db_session) == 0


@pytest.mark.parametrize("raw", ["{", '{"email": "a@example.com",}', "not json", ""])
def test_post_malformed_json_returns_bad_request_envelope(client, db_session, raw):
    response = client.post(REGISTER, data=raw, content_type="application/json")

    _error_body(response, 400, "BAD_REQUEST")
    assert _user_count(db_session) == 0


@pytest.mark.parametrize(("payload", "fields"), [
    ({"email": "not-an-email", "password": "correct horse battery staple"}, {"email"}),
    ({"email": "a@example.com"}, {"password"}),
    ({}, {"email", "password"}),
    ({"email": "a@example.com", "password": "correct horse battery staple", "role": "admin"}, {"role"}),
    ({"email": "a@example.com", "password": "correct horse battery staple", "name": 42}, {"name"}),
    ([], {"_schema"}),
])
def test_post_invalid_fields_returns_validation_envelope_with_per_field_details(client, db_session, payload,
                                                                                fields):
    response = client.post(REGISTER, json=payload)

    body = _error_body(response, 422, "VALIDATION_ERROR")
    details = body["error"]["details"]
    assert set(details) == fields
    assert all(isinstance(msg, str) and msg for field in fields for msg in details[field])
    assert _user_count(db_session) == 0


# --- unhandled exceptions ------------------------------------------------------------------------


def test_unhandled_exception_returns_internal_error_envelope_without_detail(boom_client):
    response = boom_client.get(BOOM)

    body = _error_body(response, 500, "INTERNAL_ERROR")
    text = response.get_data(as_text=True)
    assert SECRET_DETAIL not in text
    assert "Traceback" not in text and "RuntimeError" not in text
    assert body["error"]["details"] == {}


def test_unhandled_exception_logs_traceback_with_request_id(boom_client, caplog):
    caplog.set_level(logging.ERROR)

    response = boom_client.get(BOOM)

    request_id = response.headers["X-Request-ID"]
    [record] = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]
    assert record.levelno == logging.ERROR
    assert str(record.exc_info[1]) == SECRET_DETAIL
    assert record.request_id == request_id
    assert "Traceback" in caplog.text and SECRET_DETAIL in caplog.text


# --- X-Request-ID --------------------------------------------------------------------------------


def test_request_without_id_gets_generated_uuid4(client):
    response = client.get("/api/health")

    request_id = response.headers["X-Request-ID"]
    assert uuid.UUID(request_id).version == 4
    assert response.get_json()["request_id"] == request_id


@pytest.mark.parametrize("incoming", [
    "3f1f6b1e-8a43-4d7e-9b1a-2d1c9f0e4a55",
    "req-12345678",
    "trace.id:abc_DEF-123",
    "a" * 128,
])
def test_request_with_well_formed_id_echoes_it(client, incoming):
    response = client.get("/api/health", headers={"X-Request-ID": incoming})

    assert response.headers["X-Request-ID"] == incoming
    assert response.get_json()["request_id"] == incoming


@pytest.mark.parametrize("incoming", [
    "has spaces in it",
    "a" * 129,
    "<script>alert(1)</script>",
    "abc<def>ghijkl",
    "short",
    "-leading-dash-1234",
    "quote\"inside1234",
    "",
], ids=["spaces", "too-long", "html", "angle-brackets", "too-short", "leading-dash", "quote", "empty"])
def test_request_with_malformed_id_replaces_it(client, incoming):
    response = client.get("/api/health", headers={"X-Request-ID": incoming})

    request_id = response.headers["X-Request-ID"]
    assert request_id != incoming
    assert uuid.UUID(request_id).version == 4
    assert response.get_json()["request_id"] == request_id


def test_non_api_response_carries_request_id(client):
    response = client.get("/", headers={"X-Request-ID": "req-html-0001"})

    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "req-html-0001"


@pytest.mark.parametrize("path", ["/", "/nope", "/apiary", "/oauth2/nope"])
def test_get_unknown_non_api_path_returns_html_not_envelope(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert response.get_json(silent=True) is None
    assert uuid.UUID(response.headers["X-Request-ID"]).version == 4


# --- every /api rule answers errors in the envelope ----------------------------------------------

def _error_cases() -> list:
    """For every /api operation, the error requests a client can provoke without any setup."""
    app = collection_app()
    cases = []
    seen_rules = set()
    for op in api_operations(app):
        view = op.view(app)
        if getattr(view, "requires_session", False):
            cases += [pytest.param(op, provocation, 401, "AUTHENTICATION_ERROR",
                                   id=f"{op.method} {op.rule} {provocation}")
                      for provocation in ("no_token", "unknown_token")]
        elif getattr(view, "openapi", {}).get("body") is not None:
            cases.append(pytest.param(op, "non_json", 415, "UNSUPPORTED_MEDIA_TYPE",
                                      id=f"{op.method} {op.rule} non_json"))
        if op.rule not in seen_rules:
            seen_rules.add(op.rule)
            cases.append(pytest.param(op, "wrong_method", 405, "METHOD_NOT_ALLOWED",
                                      id=f"{op.rule} wrong_method"))
    return cases


def _disallowed_method(op: Operation) -> str:
    return next(m for m in ("PUT", "PATCH", "DELETE", "POST", "GET") if m not in op.allowed)


@pytest.mark.parametrize(("op", "provocation", "status", "error_type"), _error_cases())
def test_api_operation_error_returns_envelope(client, op, provocation, status, error_type):
    if provocation == "no_token":
        response = client.open(op.sample_url, method=op.method)
    elif provocation == "unknown_token":
        response = client.open(op.sample_url, method=op.method, headers={"Authorization": "Bearer not-a-session"})
    elif provocation == "non_json":
        response = client.open(op.sample_url, method=op.method, data="a=1",
                               content_type="application/x-www-form-urlencoded")
    else:
        response = client.open(op.sample_url, method=_disallowed_method(op))

    _error_body(response, status, error_type)
    assert ERROR_TYPES[error_type] == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if status == 405:
        assert {m.strip() for m in response.headers["Allow"].split(",")} == set(op.allowed)


def test_error_cases_cover_every_api_rule(app):
    covered = {case.values[0].rule for case in _error_cases()}

    assert covered == {op.rule for op in api_operations(app)}


# --- security headers ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/health", "/api/nope", "/api/docs", "/"],
                         ids=["api", "api-error", "html-docs", "html-404"])
def test_response_carries_anti_framing_and_nosniff_headers(client, path):
    response = client.get(path)

    assert response.headers.getlist("X-Frame-Options") == ["DENY"]
    [policy] = response.headers.getlist("Content-Security-Policy")
    assert "frame-ancestors 'none'" in policy
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert response.headers.getlist("Referrer-Policy") == ["no-referrer"]
    assert len(response.headers.getlist("X-Request-ID")) == 1
