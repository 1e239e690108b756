"""All models, imported so metadata (and Alembic autogenerate) sees every table."""

from app.models.account_token import AccountToken, AccountTokenPurpose
from app.models.api_key import ApiKey
from app.models.audit import AuditEvent
from app.models.base import Base
from app.models.client import OAuthClient, TokenEndpointAuthMethod
from app.models.consent import Consent
from app.models.domain import OrganizationDomain
from app.models.federation import (ExternalIdentity, FederationState, IdentityProvider, ProviderKind,
                                   SAMLAssertionUse)
from app.models.login_throttle import LoginThrottle
from app.models.organization import Invitation, InvitationStatus, Membership, Organization, Role
from app.models.session import SessionEndReason, SessionKind, UserSession
from app.models.tokens import AuthorizationCode, RefreshToken, RevokedToken
from app.models.user import User, UserStatus

__all__ = ["AccountToken", "AccountTokenPurpose", "ApiKey", "AuditEvent", "AuthorizationCode", "Base", "Consent", "ExternalIdentity", "FederationState",
           "IdentityProvider", "Invitation", "InvitationStatus", "LoginThrottle", "Membership", "OAuthClient",
           "Organization", "OrganizationDomain", "ProviderKind", "RefreshToken", "RevokedToken", "Role",
           "SAMLAssertionUse",
           "SessionEndReason", "SessionKind", "TokenEndpointAuthMethod", "User", "UserSession", "UserStatus"]
