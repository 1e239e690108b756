"""Schemas shared across resources: the envelope, as documented in OpenAPI, and pagination."""

import re

from marshmallow import Schema, fields, validate

from app.errors import ERROR_TYPES


# A name the services refuse when it is only whitespace ("Must not be blank.").
NOT_BLANK = {"pattern": r"\S"}


def full_match(pattern: re.Pattern[str]) -> str:
    """A pattern the services apply with fullmatch, anchored for JSON Schema (which searches)."""
    return f"^(?:{pattern.pattern})$"


class ErrorDetail(Schema):
    type = fields.String(required=True, metadata={"enum": sorted(ERROR_TYPES)})
    details = fields.Dict(required=True, metadata={"description": "Per-field messages for VALIDATION_ERROR."})


class EnvelopeBase(Schema):
    version = fields.String(required=True, metadata={"example": "1.0"})
    success = fields.Boolean(required=True)
    code = fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    message = fields.String(required=True)
    request_id = fields.String(required=True, metadata={"description": "Also in the X-Request-ID header."})


class ErrorEnvelope(EnvelopeBase):
    error = fields.Nested(ErrorDetail, required=True)
    data = fields.Raw(metadata={"description": "Only where the operation says so (GET /api/health: the status "
                                               "per component)."})


class PageMeta(Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)


class PageIn(Schema):
    """The query parameters of a paginated list; subclass it to add filters."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
