"""OAuth clients: registration and update payloads, and the client as returned.

Shape and format only; services.client_rules holds the rules that relate fields
to each other (grant types, scopes, keys, lifetimes) and refuses first_party for
an organization's client. The Organization* schemas are what an organization's
admins send: the same, without first_party (skipping consent is a platform decision).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from app.config import MAX_CLIENT_ACCESS_TOKEN_LIFETIME
from app.models import TokenEndpointAuthMethod
from app.models.client import API_SCOPE, GRANT_TYPES, ID_TOKEN_ALGS, MAX_LIFETIME, MIN_LIFETIME
from app.schemas.common import NOT_BLANK, PageIn, full_match
from app.security.redirect_uris import MAX_REDIRECT_URI_LENGTH, redirect_uri_problem

MAX_REDIRECT_URIS = 32
MAX_SCOPES = 100


def validate_redirect_uri(uri: str) -> None:
    """marshmallow validator around redirect_uri_problem."""
    problem = redirect_uri_problem(uri)
    if problem is not None:
        raise ValidationError(problem)


class RedirectURI(fields.String):
    """A redirect or post-logout redirect URI; see redirect_uri_problem for what is accepted."""

    def __init__(self, **kwargs: Any) -> None:
        extra = kwargs.pop("validate", None)
        validators = [validate_redirect_uri, *([extra] if callable(extra) else extra or [])]
        kwargs.setdefault("metadata", {"format": "uri", "maxLength": MAX_REDIRECT_URI_LENGTH,
                                       "example": "https://app.example.com/callback"})
        super().__init__(validate=validators, **kwargs)


def redirect_uri_list(**kwargs: Any) -> fields.List:
    return fields.List(RedirectURI(), validate=validate.Length(max=MAX_REDIRECT_URIS), **kwargs)


def _scope_list(**kwargs: Any) -> fields.List:
    return fields.List(
        fields.String(validate=validate.Length(min=1, max=64), metadata={"pattern": full_match(API_SCOPE)}),
        validate=validate.Length(max=MAX_SCOPES),
        metadata={"description": "OIDC scopes (openid, profile, email, offline_access, organization) and API "
                                 "scopes matching ^[a-z][a-z0-9_.:-]{0,63}$. Every grant is limited to these.",
                  "example": ["openid", "profile", "email", "offline_access"]},
        **kwargs)


def _grant_types(**kwargs: Any) -> fields.List:
    return fields.List(
        fields.String(validate=validate.Length(min=1, max=64), metadata={"enum": list(GRANT_TYPES)}),
        validate=validate.Length(min=1, max=10),
        metadata={"description": "authorization_code, refresh_token (needs authorization_code) and/or "
                                 "client_credentials (confidential clients only)."},
        **kwargs)


def _lifetime(maximum: int, **kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, allow_none=True, metadata={
        "minimum": MIN_LIFETIME, "maximum": maximum,
        "description": f"Seconds, {MIN_LIFETIME} to {maximum}; null = server default."}, **kwargs)


def _access_token_lifetime(**kwargs: Any) -> fields.Integer:
    return _lifetime(MAX_CLIENT_ACCESS_TOKEN_LIFETIME, **kwargs)


def _refresh_token_lifetime(**kwargs: Any) -> fields.Integer:
    return _lifetime(MAX_LIFETIME, **kwargs)


def _jwks(**kwargs: Any) -> fields.Dict:
    return fields.Dict(allow_none=True, metadata={
        "description": "private_key_jwt only: the client's public signing keys as a JWK Set (RFC 7517 §5)."},
        **kwargs)


def _id_token_alg(**kwargs: Any) -> fields.String:
    return fields.String(metadata={"enum": list(ID_TOKEN_ALGS)}, **kwargs)


def _organization_required(**kwargs: Any) -> fields.Boolean:
    return fields.Boolean(metadata={
        "description": "Every authorization must happen in an organization: the authorization request names "
                       "one (organization=<id or slug>) or the user picks one of theirs."}, **kwargs)


class ClientIn(Schema):
    """Register a client. Confidential clients get a secret in the response, once."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata=NOT_BLANK)
    client_type = fields.String(required=True, validate=validate.OneOf(["public", "confidential"]))
    token_endpoint_auth_method = fields.String(
        validate=validate.OneOf([m.value for m in TokenEndpointAuthMethod]),
        metadata={"description": "Default: none for public clients, client_secret_basic for confidential ones."})
    redirect_uris = redirect_uri_list(load_default=list)
    post_logout_redirect_uris = redirect_uri_list(load_default=list)
    grant_types = _grant_types(required=True)
    scopes = _scope_list(required=True)
    first_party = fields.Boolean(load_default=False,
                                 metadata={"description": "First-party clients skip the consent page."})
    jwks = _jwks()
    id_token_signed_response_alg = _id_token_alg()
    access_token_lifetime = _access_token_lifetime()
    refresh_token_lifetime = _refresh_token_lifetime()
    organization_required = _organization_required(load_default=False)


class ClientUpdateIn(Schema):
    """Change some of a client's settings; omitted fields keep their values."""

    name = fields.String(validate=validate.Length(min=1, max=200), metadata=NOT_BLANK)
    redirect_uris = redirect_uri_list()
    post_logout_redirect_uris = redirect_uri_list()
    grant_types = _grant_types()
    scopes = _scope_list()
    first_party = fields.Boolean(metadata={"description": "First-party clients skip the consent page. Only a "
                                                          "platform client (of no organization) may be one: 422 "
                                                          "for an organization's client."})
    jwks = _jwks()
    id_token_signed_response_alg = _id_token_alg()
    access_token_lifetime = _access_token_lifetime()
    refresh_token_lifetime = _refresh_token_lifetime()
    organization_required = _organization_required()


class OrganizationClientIn(ClientIn):
    """Register a client of the organization. Confidential clients get a secret in the response, once."""

    class Meta:
        exclude = ("first_party",)  # sent anyway, it is an unknown field (422)


class OrganizationClientUpdateIn(ClientUpdateIn):
    """Change some of the organization's client's settings; omitted fields keep their values."""

    class Meta:
        exclude = ("first_party",)


class ClientListIn(PageIn):
    """One page of clients, oldest first."""


class _ClientType(fields.String):
    """Dumps token_endpoint_auth_method as the client type: none means public."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else ("public" if value == TokenEndpointAuthMethod.NONE else "confidential")


class ClientOut(Schema):
    """A client as stored. Never includes the secret or its hash."""

    client_id = fields.String()
    name = fields.String()
    organization_id = fields.UUID(allow_none=True,
                                  metadata={"description": "The owning organization; null for a platform client."})
    client_type = _ClientType(attribute="token_endpoint_auth_method", dump_only=True,
                             metadata={"enum": ["public", "confidential"]})
    token_endpoint_auth_method = fields.String()
    redirect_uris = fields.List(fields.String())
    post_logout_redirect_uris = fields.List(fields.String())
    grant_types = fields.List(fields.String())
    response_types = fields.List(fields.String())
    scopes = fields.List(fields.String())
    require_pkce = fields.Boolean()
    first_party = fields.Boolean()
    jwks = fields.Dict(allow_none=True)
    id_token_signed_response_alg = fields.String()
    access_token_lifetime = fields.Integer(allow_none=True)
    refresh_token_lifetime = fields.Integer(allow_none=True)
    organization_required = fields.Boolean()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class IssuedClientOut(ClientOut):
    """A client with its secret, shown in this response only (creation and rotation)."""

    client_secret = fields.String(allow_none=True, metadata={
        "description": "Store it now: only its hash is kept. null for public and private_key_jwt clients."})

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        # obj is a services.clients.IssuedClient: the secret from it, everything else from its client.
        if attr == "client_secret":
            return obj.client_secret
        return super().get_attribute(obj.client, attr, default)
