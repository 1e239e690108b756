"""Users: registration, profile, password and deletion payloads."""

from marshmallow import Schema, fields, validate

from app.security.passwords import MAX_BYTES, MIN_LENGTH

# What services.users.require_password_policy enforces, as the OpenAPI document states it.
NEW_PASSWORD_RULES = {
    "minLength": MIN_LENGTH, "maxLength": MAX_BYTES,
    "description": f"At least {MIN_LENGTH} characters and at most {MAX_BYTES} bytes in UTF-8 (bcrypt's limit); "
                   "not a commonly used password (422 otherwise).",
}


def password_field(*, required: bool = True, metadata: dict | None = None) -> fields.String:
    """A password input. Shape only: services.users applies the password policy."""
    return fields.String(required=required, load_only=True, validate=validate.Length(min=1, max=1024),
                         metadata=metadata or {})


def new_password_field(*, required: bool = True, description: str = "") -> fields.String:
    """A password being set: documented with the policy services.users applies to it."""
    return password_field(required=required, metadata={
        **NEW_PASSWORD_RULES, "description": " ".join(filter(None, (description, NEW_PASSWORD_RULES["description"])))})


class RegisterIn(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = new_password_field()
    name = fields.String(load_default="", validate=validate.Length(max=200))


class UserOut(Schema):
    id = fields.UUID()
    email = fields.String()
    email_verified = fields.Boolean()
    name = fields.String()
    status = fields.String()
    is_platform_admin = fields.Boolean()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class UserUpdateIn(Schema):
    name = fields.String(validate=validate.Length(max=200))


class PasswordChangeIn(Schema):
    current_password = password_field()
    new_password = new_password_field()


class AccountDeleteIn(Schema):
    password = password_field()


class ExternalIdentityOut(Schema):
    """An identity at an upstream provider linked to the account (its email as it was at link time)."""

    id = fields.UUID()
    provider_id = fields.UUID()
    provider_name = fields.Function(lambda identity: identity.provider.name)
    provider_kind = fields.Function(lambda identity: str(identity.provider.kind))
    email = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    last_used_at = fields.AwareDateTime()


class AccountEmailIn(Schema):
    """The address a password-reset or verification link is to be sent to."""
    email = fields.Email(required=True, validate=validate.Length(max=320))


def link_token_field() -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=200),
                         metadata={"description": "The token of the emailed link (its `token` query parameter)."})


class PasswordResetIn(Schema):
    token = link_token_field()
    password = new_password_field()


class EmailVerifyIn(Schema):
    token = link_token_field()
