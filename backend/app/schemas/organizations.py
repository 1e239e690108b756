"""Organizations, their members and roles: payloads and what is returned.

Shape and format only: services.organizations, services.memberships and services.roles
check slugs, settings, role names, permissions and who may do what.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app.models.organization import INVITATION_TTL_HOURS_DEFAULT, INVITATION_TTL_HOURS_MAX, ROLE_NAME, SLUG
from app.schemas.common import NOT_BLANK, PageIn, full_match
from app.security.permissions import PERMISSIONS

# The keys services.organizations.settings_problems accepts, with their bounds.
_SETTINGS = {
    "description": "Organization preferences; `settings` on an update changes only the keys given.",
    "type": "object", "additionalProperties": False,
    "properties": {"invitation_ttl_hours": {
        "type": "integer", "minimum": 1, "maximum": INVITATION_TTL_HOURS_MAX,
        "description": f"How long an invitation link stays valid; default {INVITATION_TTL_HOURS_DEFAULT}."}},
    "example": {"invitation_ttl_hours": 72},
}
_SLUG = {"description": "Lower-case letters, digits and hyphens, starting and ending with a letter or digit; "
                        "unique; not shaped like an id.", "pattern": full_match(SLUG), "example": "acme"}
_ROLE_NAME = {"description": "Lower-case letters, digits, hyphens and underscores, starting with a letter or digit; "
                             "unique in the organization; not owner, admin or member (409).",
              "pattern": full_match(ROLE_NAME), "example": "support"}
_ROLE_REF = {"description": "A role of this organization, by name (e.g. admin) or by id."}


class OrganizationIn(Schema):
    """Create an organization; the caller becomes its owner."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata=NOT_BLANK)
    slug = fields.String(required=True, validate=validate.Length(min=1, max=63), metadata=_SLUG)
    settings = fields.Dict(keys=fields.String(), load_default=dict, metadata=_SETTINGS)


class OrganizationUpdateIn(Schema):
    """Change some of an organization's fields; `settings` changes only the keys given."""

    name = fields.String(validate=validate.Length(min=1, max=200), metadata=NOT_BLANK)
    slug = fields.String(validate=validate.Length(min=1, max=63), metadata=_SLUG)
    settings = fields.Dict(keys=fields.String(), metadata=_SETTINGS)


class OrganizationOut(Schema):
    id = fields.UUID()
    slug = fields.String()
    name = fields.String()
    settings = fields.Dict()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class OrganizationRefOut(Schema):
    id = fields.UUID()
    slug = fields.String()
    name = fields.String()


class RoleNameOut(Schema):
    id = fields.UUID()
    name = fields.String()


class RoleRefOut(RoleNameOut):
    builtin = fields.Boolean()


class UserOrganizationOut(Schema):
    """One of the caller's organizations, with their role and what it allows there."""

    organization = fields.Nested(OrganizationRefOut, attribute="membership.organization")
    role = fields.Nested(RoleNameOut, attribute="membership.role")
    permissions = fields.List(fields.String())
    joined_at = fields.AwareDateTime(attribute="membership.created_at")


class MemberListIn(PageIn):
    # Empty values filter nothing, as an empty search box would send them.
    role = fields.String(validate=validate.Length(max=64),
                         metadata={"description": "Only members with the role of this name."})
    q = fields.String(validate=validate.Length(max=200),
                      metadata={"description": "Only members whose email or name contains this, ignoring case."})


class MemberIn(Schema):
    """Add an existing user, by email, with a role."""

    email = fields.Email(required=True, validate=validate.Length(max=320))
    role = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata=_ROLE_REF)


class MemberRoleIn(Schema):
    role = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata=_ROLE_REF)


class MemberOut(Schema):
    user_id = fields.UUID()
    email = fields.String(attribute="user.email")
    name = fields.String(attribute="user.name")
    role = fields.Nested(RoleRefOut)
    joined_at = fields.AwareDateTime(attribute="created_at")


def _permission_list(**kwargs: Any) -> fields.List:
    return fields.List(fields.String(validate=validate.Length(min=1, max=64), metadata={"enum": sorted(PERMISSIONS)}),
                       validate=validate.Length(max=100),
                       metadata={"description": "Permissions from the catalogue (see the operation's description).",
                                 "example": ["org:read", "members:read", "clients:read"]},
                       **kwargs)


class RoleIn(Schema):
    """Define a custom role."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata=_ROLE_NAME)
    description = fields.String(load_default="", validate=validate.Length(max=500))
    permissions = _permission_list(required=True)


class RoleUpdateIn(Schema):
    """Change some of a custom role's fields."""

    name = fields.String(validate=validate.Length(min=1, max=64), metadata=_ROLE_NAME)
    description = fields.String(validate=validate.Length(max=500))
    permissions = _permission_list()


class RoleOut(Schema):
    """A role with its effective permissions (built-in roles: as defined in code) and its number of members."""

    id = fields.UUID()
    name = fields.String()
    description = fields.String()
    builtin = fields.Boolean()
    permissions = fields.List(fields.String())
    member_count = fields.Integer()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        # obj is a services.roles.RoleDetails: permissions and member_count from it, the rest from its role.
        if attr in ("permissions", "member_count"):
            return getattr(obj, attr)
        return super().get_attribute(obj.role, attr, default)
