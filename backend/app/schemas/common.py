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


# The deepest page a list serves: its OFFSET (at most 10^8 rows) stays far inside the BIGINT
# PostgreSQL takes and SQLite's integers, where page=2^63-1 overflowed them (a 500).
MAX_PAGE = 1_000_000
MAX_PER_PAGE = 100


class PageIn(Schema):
    """The query parameters of a paginated list; subclass it to add filters."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PER_PAGE))
