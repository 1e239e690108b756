"""The OpenAPI 3 document, generated from the routes and their marshmallow schemas.

Each /api view declares what it takes and returns with @documented; the
builder walks the URL map, so a route without a declaration is caught by
tests/api/test_openapi.py rather than silently missing from the document.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema

from app.schemas.common import EnvelopeBase, ErrorEnvelope, PageMeta
from app.security import api_keys

_STATUS_TEXT = {
    400: "Malformed request: invalid JSON, JSON nested deeper than 32 levels, or a value holding NUL or a "
         "lone surrogate (security/request_input.py)", 401: "Missing, invalid or expired session token",
    403: "Not allowed", 404: "Not found", 409: "Conflict with existing data", 413: "Body too large",
    415: "Body is not application/json", 422: "Invalid fields; details per field",
    423: "Sign-in locked for this address after repeated failures; see Retry-After",
    429: "Rate limited; see Retry-After",
    500: "Internal error", 503: "A dependency is down",
}


def documented(*, summary: str, tag: str, body: type[Schema] | None = None, query: type[Schema] | None = None,
               response: type[Schema] | None = None, status: int = 200, many: bool = False,
               paginated: bool = False, errors: tuple[int, ...] = (), raw_content: str | None = None,
               description: str = "") -> Callable:
    """Declare a view's contract for the OpenAPI document.

    `raw_content` marks the few documentation routes that return a media type
    other than the JSON envelope.
    """
    def decorate(view: Callable) -> Callable:
        view.openapi = dict(summary=summary, tag=tag, body=body, query=query, response=response, status=status,
                            many=many, paginated=paginated, errors=errors, raw_content=raw_content,
                            description=description)
        return view
    return decorate


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    params = []
    for converter, name in re.findall(r"<(?:([a-z]+):)?([a-z_]+)>", rule):
        schema = {"type": "string", "format": "uuid"} if converter == "uuid" else {"type": "string"}
        params.append({"in": "path", "name": name, "required": True, "schema": schema})
    return params


def _success(meta: dict[str, Any], envelope: dict[str, Any]) -> dict[str, Any]:
    """The success envelope (api/envelope.py:ok) with this operation's data, as one closed object.

    Closed in one piece, not as allOf[EnvelopeBase, {data}]: additionalProperties applies to the
    subschema it is in, so a closed EnvelopeBase inside allOf would refuse every `data`.
    """
    if meta["raw_content"]:
        raw_type = "object" if meta["raw_content"] == "application/json" else "string"
        return {"description": meta["summary"], "content": {meta["raw_content"]: {"schema": {"type": raw_type}}}}
    data: Any = {"type": "object", "description": "Empty: the message says what was done."}
    if meta["response"] is not None:
        data = {"type": "array", "items": meta["response"]} if meta["many"] else meta["response"]
    page_meta = PageMeta if meta["paginated"] else {
        "type": "object", "additionalProperties": False, "description": "Empty: the list is not paginated."}
    properties = {**envelope["properties"], "success": {"type": "boolean", "enum": [True]},
                  "code": {"type": "integer", "enum": [meta["status"]], "description": "The HTTP status code."},
                  "data": data, "meta": page_meta}
    schema = {"type": "object", "additionalProperties": False, "required": [*envelope["required"], "data", "meta"],
              "properties": properties}
    return {"description": meta["summary"], "content": {"application/json": {"schema": schema}}}


def _operation(view: Callable, rule: str, envelope: dict[str, Any]) -> dict[str, Any]:
    meta = view.openapi
    # 400: any parameter may hold a refused character (security/request_input.py);
    # 503: the database is down (api/envelope.py).
    statuses = set(meta["errors"]) | {400, 500, 503}
    operation: dict[str, Any] = {"summary": meta["summary"], "tags": [meta["tag"]],
                                 "parameters": _path_parameters(rule)}
    if meta["description"]:
        operation["description"] = meta["description"]
    if meta["query"] is not None:
        operation["parameters"].append({"in": "query", "schema": meta["query"]})
        statuses.add(422)
    if meta["body"] is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": meta["body"]}}}
        statuses |= {413, 415, 422}
    if getattr(view, "requires_session", False):
        operation["security"] = [{"sessionToken": []}]
        if hasattr(view, "org_permission"):
            # Organization endpoints also take an access token with scope org:admin (api/context.py).
            operation["security"].append({"orgAdminAccessToken": []})
            operation["x-required-permission"] = view.org_permission
        if hasattr(view, "api_key_scope"):
            operation["security"].append({"apiKey": []})
            operation["x-api-key-scope"] = view.api_key_scope
            statuses.add(403)  # a key without the scope
        statuses.add(401)
    elif getattr(view, "optional_session", False):
        # Anonymous, or signed in (a bad token is still 401): {} makes the scheme optional.
        operation["security"] = [{}, {"sessionToken": []}]
        statuses.add(401)
    else:
        operation["security"] = []
    responses: dict[Any, Any] = {str(meta["status"]): _success(meta, envelope)}
    for status in sorted(statuses):
        responses[str(status)] = {"description": _STATUS_TEXT.get(status, "Error"),
                                  "content": {"application/json": {"schema": ErrorEnvelope}}}
    operation["responses"] = responses
    return operation


def build_spec(app: Flask) -> dict[str, Any]:
    marshmallow = MarshmallowPlugin()
    spec = APISpec(title="Gatehouse management API", version="1.0.0", openapi_version="3.0.3",
                   plugins=[marshmallow],
                   info={"description": "Every response, success or error, uses the envelope below. "
                                        "Errors carry `error.type` from a closed set."})
    spec.components.security_scheme("sessionToken", {
        "type": "http", "scheme": "bearer",
        "description": "An opaque session token from POST /api/v1/auth/login."})
    spec.components.security_scheme("orgAdminAccessToken", {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A Gatehouse access token (RFC 9068) with scope org:admin, issued for the organization "
                       "in the path (authorize with organization=<id or slug>). It acts with the user's current "
                       "membership permissions, in that organization only; platform-admin rights need a session."})
    scopes = "".join(f"\n- `{scope}`: {meaning}" for scope, meaning in api_keys.SCOPES.items())
    spec.components.security_scheme("apiKey", {
        "type": "apiKey", "in": "header", "name": api_keys.HEADER,
        "description": "A personal API key (POST /api/v1/users/me/api-keys), acting as its user within its scopes. "
                       "An operation takes one only if it lists this scheme, and its `x-api-key-scope` names the "
                       "scope needed; elsewhere, or without that scope, a key is 403 with the missing scope in "
                       "`error.details.required_scope`. A key in a query string is refused (400). Scopes:" + scopes})
    spec.components.schema("ErrorEnvelope", schema=ErrorEnvelope)
    envelope = marshmallow.converter.schema2jsonschema(EnvelopeBase)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith("/api"):
            continue
        view = app.view_functions[rule.endpoint]
        operations = {method.lower(): _operation(view, rule.rule, envelope)
                      for method in sorted(rule.methods - {"HEAD", "OPTIONS"})}
        spec.path(path=_openapi_path(rule.rule), operations=operations)
    document = spec.to_dict()
    _refuse_unstorable_characters(document)
    return document


def _refuse_unstorable_characters(node: Any) -> None:
    """State on every string schema that security/request_input.py refuses NUL before any view runs.
    Lone surrogates, refused too, are stated in the 400 response's words only: validators that run
    patterns on UTF-8 strings (jsonschema-rs, for one) cannot name them."""
    if isinstance(node, dict):
        if node.get("type") == "string":
            node["not"] = {"pattern": "\\u0000"}
        for value in node.values():
            _refuse_unstorable_characters(value)
    elif isinstance(node, list):
        for value in node:
            _refuse_unstorable_characters(value)


def undocumented_api_rules(app: Flask) -> list[str]:
    """The /api rules whose view has no @documented declaration."""
    return [rule.rule for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/api") and not hasattr(app.view_functions[rule.endpoint], "openapi")]
