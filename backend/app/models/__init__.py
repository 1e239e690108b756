"""All models, imported so metadata (and Alembic autogenerate) sees every table."""

from app.models.audit import AuditEvent
from app.models.base import Base
from app.models.session import SessionEndReason, SessionKind, UserSession
from app.models.user import User, UserStatus

__all__ = ["AuditEvent", "Base", "SessionEndReason", "SessionKind", "User", "UserSession", "UserStatus"]
