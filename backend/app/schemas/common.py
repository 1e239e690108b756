"""Schemas shared across resources: the envelope, as documented in OpenAPI."""

from marshmallow import Schema, fields

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
