"""An organization's audit trail: the list filters and an event as returned."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.common import PageIn

# An action ("client.created") or a prefix of one ending in "." ("client.").
ACTION_FILTER = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]*)*$"


class AuditEventListIn(PageIn):
    """One page of events, newest first, optionally filtered."""

    action = fields.String(
        validate=[validate.Length(max=64), validate.Regexp(ACTION_FILTER, error="Not an action or action prefix.")],
        metadata={"description": 'An action, matched exactly ("membership.added"), or a prefix ending in "." '
                                 '("membership." for every membership event).', "example": "client."})
    actor_user_id = fields.UUID(data_key="actor", metadata={"description": "Only events done by this user (id)."})
    since = fields.AwareDateTime(metadata={
        "description": "ISO 8601 with a timezone; events at or after this instant.",
        "example": "2025-01-31T00:00:00Z"})
    until = fields.AwareDateTime(metadata={
        "description": "ISO 8601 with a timezone; events at or before this instant. Not before since.",
        "example": "2025-02-01T00:00:00Z"})


class AuditEventOut(Schema):
    """Who did what, from where, with what result. details never hold secrets."""

    id = fields.UUID()
    occurred_at = fields.AwareDateTime()
    action = fields.String(metadata={"example": "client.created"})
    result = fields.String(metadata={"enum": ["success", "failure"]})
    actor_user_id = fields.UUID(allow_none=True, metadata={
        "description": "null for the command line, anonymous callers, and deleted accounts."})
    target_type = fields.String(allow_none=True, metadata={"example": "client"})
    target_id = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    details = fields.Dict()
