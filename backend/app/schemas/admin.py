"""Platform administration: account lists, changes and overviews, login histories and the
platform's audit trail."""

from marshmallow import Schema, fields, validate

from app.schemas.api_keys import ApiKeyOut
from app.schemas.audit import AuditEventListIn, AuditEventOut
from app.schemas.common import PageIn
from app.schemas.organizations import OrganizationRefOut, RoleNameOut
from app.schemas.sessions import SessionOut
from app.schemas.users import ExternalIdentityOut, UserOut

USER_STATUSES = ["active", "suspended"]


class AdminUserListIn(PageIn):
    """One page of accounts, newest first, optionally filtered."""

    q = fields.String(validate=validate.Length(max=320), metadata={
        "description": "A case-insensitive part of the email or the name.", "example": "lovelace"})
    status = fields.String(validate=validate.OneOf(USER_STATUSES), metadata={"enum": USER_STATUSES})


class AdminUserCreateIn(Schema):
    """A new account. It has no password: its owner is emailed a reset link to choose one."""

    email = fields.Email(required=True, validate=validate.Length(max=320))
    name = fields.String(load_default="", validate=validate.Length(max=200))
    is_platform_admin = fields.Boolean(load_default=False)
    email_verified = fields.Boolean(load_default=False)


class AdminUserUpdateIn(Schema):
    """The fields to change; the others stay."""

    name = fields.String(validate=validate.Length(max=200))
    is_platform_admin = fields.Boolean(metadata={
        "description": "false demotes: refused (409) for yourself and for the last active platform administrator."})
    email_verified = fields.Boolean()


class AccountMembershipOut(Schema):
    """One of the account's organizations and its role there."""

    organization = fields.Nested(OrganizationRefOut)
    role = fields.Nested(RoleNameOut)
    joined_at = fields.AwareDateTime(attribute="created_at")


class AccountSessionOut(SessionOut):
    """One of the account's live sessions (none of them is the administrator's own request's)."""

    class Meta:
        exclude = ("current",)


class AccountOverviewOut(Schema):
    """An account as an administrator sees it. Never a password, a token or a secret."""

    user = fields.Nested(UserOut)
    organizations = fields.Nested(AccountMembershipOut, many=True, attribute="memberships")
    live_sessions = fields.Nested(AccountSessionOut, many=True)
    identities = fields.Nested(ExternalIdentityOut, many=True)
    api_keys = fields.Nested(ApiKeyOut, many=True, metadata={
        "description": "The account's live personal API keys: never the keys themselves or their hashes."})


class SuspensionOut(Schema):
    user = fields.Nested(UserOut)
    sessions_ended = fields.Integer()
    refresh_tokens_revoked = fields.Integer(metadata={
        "description": "Refresh tokens that were still live; the access tokens issued with them, or from "
                       "authorization codes, are denied until they expire."})
    api_keys_revoked = fields.Integer(metadata={"description": "Personal API keys that were live."})


class UnlockOut(Schema):
    counters_cleared = fields.Integer(metadata={
        "description": "Failed sign-in counters removed (the account's, and one per address that failed)."})


SIGN_IN_METHODS = ["password", "federation", "invitation", "api_key"]


class SignInOut(Schema):
    """One sign-in or failed attempt, read from the audit trail (action auth.login)."""

    id = fields.UUID()
    occurred_at = fields.AwareDateTime()
    result = fields.String(metadata={"enum": ["success", "failure"]})
    method = fields.Function(lambda event: event.details.get("method"), metadata={
        "type": "string", "enum": [*SIGN_IN_METHODS, None], "nullable": True,
        "description": "How the person proved who they are; null for sign-ins recorded before methods were."})
    reason = fields.Function(lambda event: event.details.get("reason"), metadata={
        "type": "string", "nullable": True, "example": "bad_password",
        "description": "Why a failure failed (bad_password, locked, throttled, suspended, ...); null on success."})
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)


class PlatformAuditEventListIn(AuditEventListIn):
    """The organization audit's filters, plus the organization and the target."""

    organization_id = fields.UUID(metadata={"description": "Only events in this organization's trail."})
    target_type = fields.String(validate=validate.Length(max=32), metadata={
        "description": "Only events acting on this kind of thing.", "example": "user"})
    target_id = fields.String(validate=validate.Length(max=64), metadata={
        "description": "Only events acting on the thing with this id (with target_type, one thing)."})


class PlatformAuditEventOut(AuditEventOut):
    organization_id = fields.UUID(allow_none=True, metadata={"description": "null for platform events."})
