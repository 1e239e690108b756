"""GET /api/openapi.json and /api/docs: the document matches the routes and is valid OpenAPI 3.0."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from app.api.openapi import undocumented_api_rules
from app.config import MAX_CLIENT_ACCESS_TOKEN_LIFETIME
from app.models.client import API_SCOPE, GRANT_TYPES, ID_TOKEN_ALGS, MAX_LIFETIME
from app.models.organization import INVITATION_TTL_HOURS_MAX, ROLE_NAME
from app.security import api_keys, passwords
from app.security.permissions import PERMISSIONS
from tests.api.routes import api_operations

ERROR_ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"
BODY_ERRORS = {"400", "413", "415", "422"}
RAW_OPERATIONS = {("/api/openapi.json", "GET"), ("/api/docs", "GET")}  # the document itself, and as HTML


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _operations(spec: dict) -> dict[tuple[str, str], dict]:
    return {(path, method.upper()): op for path, ops in spec["paths"].items() for method, op in ops.items()}


def _unauthenticated_status(client, op) -> int:
    """What the operation answers to a request with no credentials and no body."""
    return client.open(op.sample_url, method=op.method).status_code


def test_get_openapi_document_is_openapi_3_0(spec):
    assert re.fullmatch(r"3\.0\.\d+", spec["openapi"])


def test_get_openapi_document_passes_spec_validator(spec):
    validate(spec)  # raises OpenAPIValidationError with the offending location


def test_openapi_document_lists_every_api_rule_and_method(app, spec):
    expected = {(op.openapi_path, op.method) for op in api_operations(app)}

    assert set(_operations(spec)) == expected


def test_every_api_rule_has_a_documented_view(app):
    assert undocumented_api_rules(app) == []


@pytest.mark.parametrize("status", ["500", "503"])  # 503: the database is down (api/envelope.py)
def test_every_operation_declares_server_error_envelope(spec, status):
    missing = [key for key, op in _operations(spec).items()
               if op["responses"].get(status, {}).get("content", {}).get("application/json", {})
               .get("schema", {}).get("$ref") != ERROR_ENVELOPE_REF]

    assert missing == []


def test_every_error_response_references_error_envelope(spec):
    wrong = [(key, status) for key, op in _operations(spec).items() for status, response in op["responses"].items()
             if int(status) >= 400 and response["content"]["application/json"]["schema"].get("$ref")
             != ERROR_ENVELOPE_REF]

    assert wrong == []


def test_operation_answering_401_without_token_declares_security_and_401(app, client, spec):
    documented = _operations(spec)
    wrong = []
    for op in api_operations(app):
        declared = documented[(op.openapi_path, op.method)]
        requires_session = _unauthenticated_status(client, op) == 401
        declares_session = ({"sessionToken": []} in declared["security"] and {} not in declared["security"]
                            and "401" in declared["responses"])
        if requires_session != declares_session:
            wrong.append((op.method, op.rule, requires_session, declared["security"]))

    assert wrong == []
    assert "sessionToken" in spec["components"]["securitySchemes"]


def test_operations_that_take_an_optional_session_declare_it(app, client, spec):
    """Accepting an invitation works anonymously (registering) and signed in (joining as the session's
    user): the document lets a generated client send the session token, and says a bad one is 401."""
    documented = _operations(spec)
    optional = [op for op in api_operations(app) if getattr(op.view(app), "optional_session", False)]
    assert [(op.method, op.rule) for op in optional] == [("POST", "/api/v1/invitations/accept")]
    for op in optional:
        declared = documented[(op.openapi_path, op.method)]
        assert declared["security"] == [{}, {"sessionToken": []}]
        assert "401" in declared["responses"]
        assert _unauthenticated_status(client, op) != 401
        assert client.open(op.sample_url, method=op.method,
                           headers={"Authorization": "Bearer not-a-session"}, json={}).status_code == 401


def test_organization_operations_declare_the_access_token_scheme_and_their_permission(app, spec):
    documented = _operations(spec)
    for op in api_operations(app):
        view = op.view(app)
        declared = documented[(op.openapi_path, op.method)]
        if hasattr(view, "org_permission"):
            key = [{"apiKey": []}] if hasattr(view, "api_key_scope") else []
            assert declared["security"] == [{"sessionToken": []}, {"orgAdminAccessToken": []}, *key]
            assert declared["x-required-permission"] == view.org_permission
        else:
            assert {"orgAdminAccessToken": []} not in declared["security"]
    assert spec["components"]["securitySchemes"]["orgAdminAccessToken"]["bearerFormat"] == "JWT"


def test_operations_that_take_api_keys_declare_the_scheme_and_their_scope(app, spec):
    documented = _operations(spec)
    taking = 0
    for op in api_operations(app):
        view = op.view(app)
        declared = documented[(op.openapi_path, op.method)]
        if hasattr(view, "api_key_scope"):
            taking += 1
            assert {"apiKey": []} in declared["security"] and "403" in declared["responses"]
            assert declared["x-api-key-scope"] == view.api_key_scope
        else:
            assert {"apiKey": []} not in declared["security"] and "x-api-key-scope" not in declared
    assert taking > 0
    scheme = spec["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    assert all(f"`{scope}`: {meaning}" in scheme["description"] for scope, meaning in api_keys.SCOPES.items())


def test_api_key_input_documents_the_scope_catalogue(spec):
    properties = _body_schema(spec, "/api/v1/users/me/api-keys", "post")["properties"]

    assert properties["scopes"]["items"]["enum"] == list(api_keys.SCOPES)


def test_operation_with_request_body_declares_body_errors(spec):
    with_body = {key: op for key, op in _operations(spec).items() if "requestBody" in op}
    missing = {key: sorted(BODY_ERRORS - set(op["responses"])) for key, op in with_body.items()
               if not BODY_ERRORS <= set(op["responses"])}

    assert with_body  # register, login and the account updates take JSON bodies
    assert missing == {}


def test_operation_with_request_body_takes_json_only(spec):
    media = {key: sorted(op["requestBody"]["content"]) for key, op in _operations(spec).items()
             if "requestBody" in op}

    assert set(map(tuple, media.values())) == {("application/json",)}


def test_get_docs_returns_html_naming_every_path(client, spec):
    response = client.get("/api/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert [path for path in spec["paths"] if f"<code>{path}</code>" not in html] == []


def test_get_docs_csp_allows_its_nonced_style(client):
    response = client.get("/api/docs")

    nonces = re.findall(r'<style nonce="([^"]+)"', response.get_data(as_text=True))
    assert len(nonces) == 1 and nonces[0]
    directives = dict(d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"].split(";"))
    assert f"'nonce-{nonces[0]}'" in directives["style-src"].split()
    assert "'unsafe-inline'" not in directives["style-src"]


def test_every_success_response_is_one_closed_envelope(spec):
    """Not allOf[closed EnvelopeBase, {data}]: additionalProperties inside allOf refused every data."""
    wrong = []
    for key, op in _operations(spec).items():
        for status, response in op["responses"].items():
            schema = response["content"].get("application/json", {}).get("schema", {})
            if int(status) >= 400 or key in RAW_OPERATIONS:
                continue
            if ("allOf" in schema or schema.get("additionalProperties") is not False
                    or set(schema["required"]) != {"version", "success", "code", "message", "request_id", "data",
                                                   "meta"}
                    or schema["properties"]["code"]["enum"] != [int(status)]):
                wrong.append((key, status))

    assert wrong == []


def _body_schema(spec: dict, path: str, method: str) -> dict:
    ref = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


@pytest.mark.parametrize(("path", "method", "field"), [
    ("/api/v1/auth/register", "post", "password"),
    ("/api/v1/users/me/password", "post", "new_password"),
    ("/api/v1/invitations/accept", "post", "password"),
])
def test_new_password_documents_the_enforced_policy(spec, path, method, field):
    documented = _body_schema(spec, path, method)["properties"][field]

    assert (documented["minLength"], documented["maxLength"]) == (passwords.MIN_LENGTH, passwords.MAX_BYTES)


def test_client_input_documents_the_enforced_vocabulary(spec):
    properties = _body_schema(spec, "/api/v1/clients", "post")["properties"]

    assert properties["grant_types"]["items"]["enum"] == list(GRANT_TYPES)
    assert properties["id_token_signed_response_alg"]["enum"] == list(ID_TOKEN_ALGS)
    assert properties["scopes"]["items"]["pattern"] == f"^(?:{API_SCOPE.pattern})$"
    assert properties["access_token_lifetime"]["maximum"] == MAX_CLIENT_ACCESS_TOKEN_LIFETIME
    assert properties["refresh_token_lifetime"]["maximum"] == MAX_LIFETIME


def test_role_input_documents_the_permission_catalogue(spec):
    properties = _body_schema(spec, "/api/v1/organizations/{org_id}/roles", "post")["properties"]

    assert properties["permissions"]["items"]["enum"] == sorted(PERMISSIONS)
    assert properties["name"]["pattern"] == f"^(?:{ROLE_NAME.pattern})$"


def test_organization_settings_document_only_known_keys(spec):
    settings = _body_schema(spec, "/api/v1/organizations", "post")["properties"]["settings"]

    assert settings["additionalProperties"] is False
    assert settings["properties"]["invitation_ttl_hours"]["maximum"] == INVITATION_TTL_HOURS_MAX
