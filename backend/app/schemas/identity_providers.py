"""Upstream identity providers: the create and update bodies, and the provider as returned.

Shape and format only; services.identity_providers decides which fields each kind takes and requires,
and checks URLs against the SSRF guard. The client secret is write-only: a provider is returned with
`client_secret_set` instead, and never with the secret or its ciphertext.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, missing, validate

from app.models import ProviderKind
from app.models.domain import DOMAIN_NAME
from app.schemas.common import NOT_BLANK, PageIn, full_match

MAX_URL_LENGTH = 2048
MAX_SCOPES = 50
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def _whole(pattern: re.Pattern[str], message: str) -> Callable[[str], None]:
    """A validator that `pattern` match the whole value (validate.Regexp accepts a matching prefix)."""
    def check(value: str) -> None:
        if not pattern.fullmatch(value):
            raise ValidationError(message)
    return check
KIND_FIELD_NAMES = ("issuer", "discovery_url", "tenant", "allowed_tenants", "allow_any_tenant", "authority",
                    "base_url", "hosted_domain", "idp_entity_id", "idp_sso_url", "idp_slo_url", "idp_certificates",
                    "idp_sso_binding", "attribute_mapping", "name_id_format", "default_role", "group_role_map", "jit_membership",
                    "allow_idp_initiated", "sp_certificate")
MAX_CERTIFICATE_LENGTH = 16384
MAX_METADATA_LENGTH = 512 * 1024  # as much as the guarded fetcher reads from idp_metadata_url


def _url(description: str, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=MAX_URL_LENGTH),
                         metadata={"format": "uri", "description": description}, **kwargs)


def _name(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=200),
                         metadata={**NOT_BLANK, "description": "Shown on the sign-in button."}, **kwargs)


def _client_id(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=255),
                         metadata={"description": "Our client id registered at the provider."}, **kwargs)


def _client_secret(**kwargs: Any) -> fields.String:
    return fields.String(load_only=True, validate=validate.Length(min=1, max=1024), metadata={
        "description": "Our client secret registered at the provider. Write-only: stored encrypted, never "
                       "returned (see client_secret_set)."}, **kwargs)


class _ProviderFields(Schema):
    """The fields a create and an update body share (all optional here)."""

    class Meta:
        unknown = RAISE

    name = _name()
    enabled = fields.Boolean(metadata={"description": "Default true."})
    client_id = _client_id()
    client_secret = _client_secret()
    scopes = fields.List(fields.String(validate=_whole(SCOPE_TOKEN, "Not a scope token (RFC 6749 §3.3)."),
                                       metadata={"pattern": full_match(SCOPE_TOKEN)}),
                         validate=validate.Length(max=MAX_SCOPES),
                         metadata={"description": "Scopes asked of the provider. Default: openid email profile; "
                                                  "github: read:user user:email. OpenID kinds must include openid.",
                                   "example": ["openid", "email", "profile"]})
    trust_email = fields.Boolean(metadata={
        "description": "Default false. Whether an email this provider proved verified may link to the local account "
                       "with that email."})
    allow_signup = fields.Boolean(metadata={
        "description": "Default true. Whether a first sign-in without a local account creates one."})
    issuer = _url("oidc: the issuer; its discovery document ({issuer}/.well-known/openid-configuration) must "
                  "name exactly this issuer. Checked when set.")
    discovery_url = _url("oidc, optional: where the discovery document is, if not under the issuer.", allow_none=True)
    tenant = fields.String(validate=validate.Length(min=1, max=64), metadata={
        "description": "microsoft: common, organizations, consumers or a tenant id (a GUID)."})
    allowed_tenants = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                                  validate=validate.Length(max=100), metadata={
        "description": "microsoft with tenant common or organizations: the tenant ids whose people may sign in. "
                       "Required unless allow_any_tenant is true."})
    allow_any_tenant = fields.Boolean(metadata={
        "description": "microsoft with tenant common or organizations: let people of any tenant sign in."})
    authority = _url("microsoft: default https://login.microsoftonline.com (national clouds differ).")
    base_url = _url("github: default https://github.com; a GitHub Enterprise Server's URL otherwise.")
    hosted_domain = fields.String(
        allow_none=True, validate=[validate.Length(max=253), _whole(DOMAIN_NAME, "Not a domain name.")], metadata={
        "pattern": full_match(DOMAIN_NAME), "description": "google, optional: the Google Workspace domain whose accounts alone may sign in (hd claim)."})

    idp_entity_id = fields.String(validate=validate.Length(min=1, max=1024), metadata={
        "description": "saml: the IdP's entity id (its Issuer)."})
    idp_metadata_xml = fields.String(load_only=True, validate=validate.Length(min=1, max=MAX_METADATA_LENGTH),
                                     metadata={"description": "saml: the IdP's metadata XML (an EntityDescriptor with "
                                                              "an IDPSSODescriptor), instead of idp_entity_id, "
                                                              "idp_sso_url, idp_sso_binding, idp_slo_url and "
                                                              "idp_certificates, which are read from it. Not stored."})
    idp_metadata_url = _url("saml: where to fetch the IdP's metadata XML (through the SSRF guard), instead of "
                            "idp_metadata_xml or the fields. Fetched once, on this request; not stored.",
                            load_only=True)
    idp_sso_url = _url("saml: the IdP's single sign-on URL.")
    idp_sso_binding = fields.String(validate=validate.OneOf(["HTTP-Redirect", "HTTP-POST"]), metadata={
        "description": "saml: how the signed AuthnRequest goes to idp_sso_url: HTTP-Redirect (default; signed "
                       "in the query) or HTTP-POST (an auto-submitting form; signed in the XML)."})
    idp_slo_url = _url("saml, optional: the IdP's single logout URL (HTTP-Redirect binding). With it, our "
                       "logout of a person signed in through the connection also ends their IdP session.",
                       allow_none=True)
    idp_certificates = fields.List(fields.String(validate=validate.Length(min=1, max=MAX_CERTIFICATE_LENGTH)),
                                   validate=validate.Length(min=1, max=5), metadata={
        "description": "saml: the IdP's signing certificates, PEM; several during a rollover. Responses are "
                       "checked against these only."})
    attribute_mapping = fields.Dict(keys=fields.String(validate=validate.OneOf(
        ["email", "name", "given_name", "family_name", "groups", "subject"])),
        values=fields.String(validate=validate.Length(min=1, max=1024)), metadata={
        "description": "An organization's connection. saml: the attribute name to read for email, name, given_name, "
                       "family_name and groups; unset keys try Okta's, Entra ID's and Google Workspace's usual "
                       "names; `subject`: a stable attribute (an employee id, an object id) to take as the "
                       "person's subject instead of the NameID, required when the IdP sends a transient NameID. "
                       "oidc, microsoft: only groups, the ID token (or UserInfo) claim listing the person's "
                       "groups; default groups."})
    name_id_format = fields.String(allow_none=True, validate=validate.Length(min=1, max=256), metadata={
        "description": "saml, optional: the NameID format to ask for (persistent is best; transient is refused "
                       "unless attribute_mapping names a subject attribute)."})
    default_role = fields.String(validate=validate.Length(min=1, max=64), metadata={
        "description": "An organization's connection (saml, oidc, microsoft): the organization role of a member "
                       "added just in time when no group maps to a role. Default member; never owner."})
    group_role_map = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=256)),
                                 values=fields.String(validate=validate.Length(min=1, max=64)), metadata={
        "description": "An organization's connection (saml, oidc, microsoft): IdP group name -> organization "
                       "role, applied on every sign-in; the role with the most permissions wins; never owner, "
                       "and an owner's role is never changed by a sign-in."})
    jit_membership = fields.Boolean(metadata={
        "description": "An organization's connection (saml, oidc, microsoft), default true: whether a sign-in "
                       "adds a person who is not a member, including one an admin removed."})
    allow_idp_initiated = fields.Boolean(metadata={
        "description": "saml: default false. Whether unsolicited (IdP-initiated) responses are accepted."})


class IdentityProviderIn(_ProviderFields):
    """Register an upstream identity provider (platform-wide)."""

    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in ProviderKind]))
    name = _name(required=True)


class IdentityProviderUpdateIn(_ProviderFields):
    """Change some of a provider's settings; omitted fields keep their values. The kind cannot change."""


class IdentityProviderListIn(PageIn):
    """One page of identity providers, oldest first."""


class IdentityProviderOut(Schema):
    """A provider as stored, with the kind's own settings only, and never its client secret."""

    id = fields.UUID()
    kind = fields.String(metadata={"enum": [k.value for k in ProviderKind]})
    organization_id = fields.UUID(allow_none=True, metadata={
        "description": "The owning organization; null for a platform-wide provider."})
    name = fields.String()
    enabled = fields.Boolean()
    client_id = fields.String(allow_none=True)
    client_secret_set = fields.Boolean(metadata={"description": "Whether a client secret is stored (never returned)."})
    scopes = fields.List(fields.String())
    trust_email = fields.Boolean()
    allow_signup = fields.Boolean()
    callback_url = fields.Method("_callback_url", metadata={
        "description": "The redirect URI to register at the provider: {ISSUER}/federation/{id}/callback."})
    issuer = fields.String()
    discovery_url = fields.String(allow_none=True)
    tenant = fields.String()
    allowed_tenants = fields.List(fields.String())
    allow_any_tenant = fields.Boolean()
    authority = fields.String()
    base_url = fields.String()
    hosted_domain = fields.String(allow_none=True)
    idp_entity_id = fields.String()
    idp_sso_url = fields.String()
    idp_slo_url = fields.String(allow_none=True)
    idp_sso_binding = fields.String()
    idp_certificates = fields.List(fields.String())
    attribute_mapping = fields.Dict(keys=fields.String(), values=fields.String())
    name_id_format = fields.String(allow_none=True)
    default_role = fields.String()
    group_role_map = fields.Dict(keys=fields.String(), values=fields.String())
    jit_membership = fields.Boolean()
    allow_idp_initiated = fields.Boolean()
    sp_certificate = fields.String(metadata={"description": "saml: our signing certificate for this connection."})
    sp_entity_id = fields.Method("_sp_entity_id", metadata={
        "description": "saml: our entity id, {ISSUER}/saml/{id}/metadata (also where our metadata is)."})
    metadata_url = fields.Method("_sp_entity_id", metadata={"description": "saml: our SP metadata."})
    acs_url = fields.Method("_acs_url", metadata={"description": "saml: our ACS, {ISSUER}/saml/{id}/acs."})
    sls_url = fields.Method("_sls_url", metadata={
        "description": "saml: our single logout service, {ISSUER}/saml/{id}/sls (HTTP-Redirect binding)."})
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()

    def __init__(self, *, issuer: str | None = None, **kwargs: Any) -> None:
        """`issuer`: our ISSUER, which callback_url starts with (optional only for the OpenAPI builder)."""
        super().__init__(**kwargs)
        self.issuer_url = issuer

    def _callback_url(self, provider: Any) -> str:
        if self.issuer_url is None:
            raise ValueError("IdentityProviderOut(issuer=...) is needed to dump callback_url")
        return provider.callback_url(self.issuer_url)

    def _sp_entity_id(self, provider: Any) -> Any:
        return provider.saml_url(self._issuer(), "metadata") if provider.kind == ProviderKind.SAML else missing

    def _acs_url(self, provider: Any) -> Any:
        return provider.saml_url(self._issuer(), "acs") if provider.kind == ProviderKind.SAML else missing

    def _sls_url(self, provider: Any) -> Any:
        return provider.saml_url(self._issuer(), "sls") if provider.kind == ProviderKind.SAML else missing

    def _issuer(self) -> str:
        if self.issuer_url is None:
            raise ValueError("IdentityProviderOut(issuer=...) is needed to dump the SAML URLs")
        return self.issuer_url

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        # A kind's settings come from its JSON column; another kind's are left out of the output.
        if attr in KIND_FIELD_NAMES:
            return obj.settings.get(attr, missing)
        return super().get_attribute(obj, attr, default)

