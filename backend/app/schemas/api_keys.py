"""Personal API keys: the create payload and what is shown of a key."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app.schemas.users import password_field
from app.security.api_keys import HEADER, MAX_EXPIRY_DAYS, SCOPES

_SCOPE_LIST = "; ".join(f"`{scope}`: {meaning}" for scope, meaning in SCOPES.items())


class ApiKeyIn(Schema):
    password = password_field(metadata={
        "description": "The account's current password: creating a key needs it, and a key cannot create one. "
                       "401 when wrong, counted as a failed sign-in (423/429 after too many)."})
    name = fields.String(required=True, validate=validate.Length(min=1, max=100),
                         metadata={"description": "What the key is for, to recognise it in the list."})
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), required=True,
                         validate=validate.Length(min=1, max=len(SCOPES)),
                         metadata={"description": f"What the key may do, acting as you: {_SCOPE_LIST}."})
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True, metadata={
        "description": f"When the key stops working: in the future and within {MAX_EXPIRY_DAYS} days (422 "
                       "otherwise); null or absent: never."})


class ApiKeyOut(Schema):
    """A key as stored: never the key itself or its hash."""

    id = fields.UUID()
    name = fields.String()
    prefix = fields.String(metadata={"description": "The key's public part: it starts `ghk_<prefix>_`."})
    scopes = fields.List(fields.String(metadata={"enum": list(SCOPES)}))
    created_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime(allow_none=True)
    last_used_at = fields.AwareDateTime(allow_none=True, metadata={
        "description": "Recorded at most once a minute, with the address it came from."})
    last_used_ip = fields.String(allow_none=True)


class IssuedApiKeyOut(ApiKeyOut):
    """A new key with the key itself, shown in this response only."""

    key = fields.String(metadata={"description": f"Store it now: only its hash is kept. Send it as `{HEADER}: "
                                                "<key>`, never in a query string."})

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        # obj is a services.api_keys.IssuedApiKey: the key from it, everything else from its row.
        if attr == "key":
            return obj.key
        return super().get_attribute(obj.api_key, attr, default)
