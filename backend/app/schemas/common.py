"""Schemas shared across resources: the envelope, as documented in OpenAPI, and pagination."""

from marshmallow import Schema, fields, validate

from app.errors import ERROR_TYPES


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


class PageMeta(Schema):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()


class PageIn(Schema):
    """The query parameters of a paginated list; subclass it to add filters."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
