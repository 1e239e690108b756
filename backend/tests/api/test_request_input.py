"""security/request_input.py: a value the database cannot store (NUL, a lone surrogate) or JSON nested
beyond MAX_JSON_DEPTH is refused at the edge with a 400 in the endpoint's own format, wherever the
request carries it (issue 12, findings 2 and 6). On PostgreSQL these reached the database: a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditEvent
from app.security.request_input import MAX_JSON_DEPTH

NUL = "\x00"
SURROGATE = "\ud800"


def nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


def assert_refused_in_envelope(response) -> None:
    assert response.status == 400, response.body
    assert response.error_type == "BAD_REQUEST"


# --- the management API: the envelope -----------------------------------------------------

@pytest.mark.parametrize("path, body", [
    ("/api/v1/auth/login", {"email": f"a{NUL}@x.test", "password": "x"}),
    ("/api/v1/auth/login", {"email": "a@x.test", "password": f"pass{SURROGATE}word"}),
    ("/api/v1/auth/register", {"email": "new@x.test", "password": "long enough password", "name": f"N{NUL}"}),
    ("/api/v1/auth/register", {"email": "new@x.test", "password": "long enough password", f"na{NUL}me": "N"}),
    ("/api/v1/auth/login", {"email": ["a@x.test", {"deeper": [f"{NUL}"]}], "password": "x"}),
], ids=["nul-email", "surrogate-password", "nul-name", "nul-member-name", "nul-nested"])
def test_json_string_with_refused_character_is_400_envelope(api, db_session, path, body):
    response = api.post(path, json=body)

    assert_refused_in_envelope(response)
    assert "does not accept" in response.body["message"]
    assert db_session.scalars(select(AuditEvent)).all() == []  # refused before any service ran


@pytest.mark.parametrize("query", [f"q=a{NUL}b", f"role={NUL}", f"page=1&{NUL}=x"], ids=["q", "role", "name"])
def test_query_parameter_with_refused_character_is_400_envelope(api, org, owner_token, query):
    response = api.get(f"/api/v1/organizations/{org.id}/members?{query.replace(NUL, '%00')}", token=owner_token)

    assert_refused_in_envelope(response)


@pytest.mark.parametrize("path", ["/api/v1/organizations/ab%00c", "/api/v1/clients/ab%00c",
                                  "/api/v1/organizations/ab%00c/members"])
def test_path_id_with_nul_is_400_envelope(api, owner_token, path):
    assert_refused_in_envelope(api.get(path, token=owner_token))


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/register"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_json_nested_deeper_than_the_bound_is_400_envelope(api, path, depth):
    """Finding 6: 1,000 levels (2 KB) raised RecursionError, a 500."""
    body = '{"email":' + "[" * depth + '"x"' + "]" * depth + ',"password":"x"}'
    response = api.post(path, data=body, content_type="application/json")

    assert_refused_in_envelope(response)
    assert f"nested more than {MAX_JSON_DEPTH} levels" in response.body["message"]


def test_json_nested_within_the_bound_reaches_the_schema(api):
    response = api.post("/api/v1/auth/login", json={"email": nested(MAX_JSON_DEPTH - 1), "password": "x"})

    assert response.status == 422 and "email" in response.body["error"]["details"]
