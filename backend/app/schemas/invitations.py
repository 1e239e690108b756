"""Invitations: the invite and accept payloads, the list filter, and an invitation as returned.

Shape and format only; services.invitations applies the rules. No schema here has a
token field on output: the token is only ever in the email.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app.models import InvitationStatus
from app.schemas.common import PageIn
from app.schemas.organizations import OrganizationRefOut, RoleNameOut
from app.schemas.users import new_password_field

STATUSES = [str(status) for status in InvitationStatus]


class InvitationIn(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    role = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={
        "description": "The name (owner, admin, member or a custom role) or id of one of this organization's roles.",
        "example": "member"})


class InvitationListIn(PageIn):
    status = fields.String(validate=validate.OneOf(STATUSES))


class InvitationOut(Schema):
    """An invitation with its status (pending, accepted, revoked or expired) as the service decided it."""

    id = fields.UUID()
    email = fields.String()
    role = fields.Nested(RoleNameOut)
    status = fields.String(metadata={"enum": STATUSES})
    invited_by = fields.UUID(attribute="invited_by_user_id", allow_none=True,
                             metadata={"description": "The inviting user's id; null once that account is deleted."})
    created_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime()
    accepted_at = fields.AwareDateTime(allow_none=True)
    revoked_at = fields.AwareDateTime(allow_none=True)

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        # obj is a services.invitations.InvitationDetails: status from it, the rest from its invitation.
        if attr == "status":
            return obj.status
        return super().get_attribute(obj.invitation, attr, default)


class AcceptInvitationIn(Schema):
    """With a session token: only `token`. Without one: `token`, `password` (and `name`) create the account."""

    token = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=128))
    name = fields.String(validate=validate.Length(max=200),
                         metadata={"description": "Without a session only: the new account's name."})
    password = new_password_field(required=False, description="Without a session only: the new account's password.")


class AcceptedInvitationOut(Schema):
    """The membership the invitation created."""

    organization = fields.Nested(OrganizationRefOut)
    role = fields.Nested(RoleNameOut)
    user_id = fields.UUID()
    joined_at = fields.AwareDateTime(attribute="created_at")
