"""An organization's email domains: what an admin sends, and the domain as the API shows it."""

from __future__ import annotations

import re

from marshmallow import Schema, fields, validate

from app.models.domain import CHALLENGE_LABEL, DOMAIN_NAME
from app.schemas.common import PageIn, full_match


class DomainIn(Schema):
    """Claim a domain for the organization."""

    domain = fields.String(required=True,
                           validate=[validate.Length(max=253), validate.Regexp(re.compile(full_match(DOMAIN_NAME)))],
                           metadata={"pattern": full_match(DOMAIN_NAME), "example": "acme.com",
                                     "description": "A host name (an internationalized one in its xn-- form), "
                                                    "stored in lower case. A public mail provider's domain "
                                                    "(gmail.com, outlook.com, …) is refused (422)."})


class DomainUpdateIn(Schema):
    """Change a domain's routing; omitted fields keep their values."""

    identity_provider_id = fields.UUID(allow_none=True, metadata={
        "description": "One of the organization's connections (/identity-providers), or null."})
    auto_redirect = fields.Boolean(metadata={
        "description": "Home-realm discovery: the sign-in page sends this domain's people to the connection."})
    enforce_sso = fields.Boolean(metadata={
        "description": "This domain's people may sign in only through the organization's connections: no "
                       "password, platform provider or registration (platform administrators excepted). "
                       "Needs a verified domain routed to an enabled connection (409 otherwise)."})


class DomainListIn(PageIn):
    """One page of domains, in alphabetical order."""


class VerificationOut(Schema):
    type = fields.Constant("TXT", metadata={"enum": ["TXT"]})
    name = fields.Function(lambda domain: domain.challenge_name, metadata={
        "description": f"Where to publish the record: {CHALLENGE_LABEL}.<domain>."})
    value = fields.String(attribute="verification_token", metadata={"description": "The TXT record's value."})


class DomainOut(Schema):
    id = fields.UUID()
    domain = fields.String()
    verified = fields.Boolean()
    verified_at = fields.DateTime(allow_none=True)
    identity_provider_id = fields.UUID(allow_none=True)
    auto_redirect = fields.Boolean()
    enforce_sso = fields.Boolean()
    verification = fields.Function(lambda domain: VerificationOut().dump(domain),
                                   metadata={"type": "object", "properties": {
                                       "type": {"type": "string", "enum": ["TXT"]},
                                       "name": {"type": "string"}, "value": {"type": "string"}}})
