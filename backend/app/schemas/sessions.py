"""Sign-in and session payloads."""

from marshmallow import Schema, fields, validate

from app.schemas.users import UserOut, password_field


class LoginIn(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))
    password = password_field()


class IssuedSessionOut(Schema):
    """A new bearer token: shown once, never retrievable again."""

    token = fields.String(attribute="token")
    token_type = fields.Constant("Bearer")
    session_id = fields.UUID(attribute="session.id")
    expires_at = fields.AwareDateTime(attribute="session.expires_at")
    absolute_expires_at = fields.AwareDateTime(attribute="session.absolute_expires_at")


class SessionOut(Schema):
    id = fields.UUID()
    created_at = fields.AwareDateTime()
    last_seen_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime()
    absolute_expires_at = fields.AwareDateTime()
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    current = fields.Method("is_current")

    def is_current(self, session) -> bool:
        return session.id == self.context_session_id

    def __init__(self, *args, current_session_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.context_session_id = current_session_id


class MeOut(Schema):
    user = fields.Nested(UserOut)
    session = fields.Nested(SessionOut)


class SessionsEndedOut(Schema):
    sessions_ended = fields.Integer()
