"""Upstream identity providers and the external identities linked to local accounts.

Kind-specific settings live in one validated JSON column, `settings`, read through a frozen
dataclass per kind (`IdentityProvider.kind_settings`). Each kind has its own handful of settings
(an OIDC issuer, a Microsoft tenant, a GitHub base URL; SAML adds a dozen in Federation II); they are
read whole with their provider and never queried, so a column per setting would leave most of a wide
table empty for every row and need a migration per new setting. services.identity_providers is the
only writer and validates them per kind. Secrets never go in `settings`: each has an encrypted column
of its own (marked ENCRYPTED, so `flask secrets rotate` finds it).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, ForeignKey, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import ENCRYPTED, Base, UTCDateTime, UUIDPrimaryKey, utcnow
from app.models.user import User


class ProviderKind(enum.StrEnum):
    GOOGLE = "google"
    GITHUB = "github"
    MICROSOFT = "microsoft"
    OIDC = "oidc"
    SAML = "saml"


@dataclass(frozen=True)
class KindSettings:
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> KindSettings:
        return cls(**{name: values[name] for name in cls.field_names() if name in values})


@dataclass(frozen=True, kw_only=True)
class MembershipSettings(KindSettings):
    """What a sign-in through an organization's own connection (saml, oidc, microsoft) does to the person's
    membership: services.memberships.sync_sso_membership. Unused by platform-wide providers."""

    # The attribute (saml) or ID token claim (oidc, microsoft) to read for each key; oidc and microsoft
    # read only `groups` (default claim "groups"). saml's `subject` names a stable attribute taken as the
    # person's subject instead of the NameID.
    attribute_mapping: dict[str, str] | None = None
    default_role: str = "member"
    # IdP group name -> organization role (never owner).
    group_role_map: dict[str, str] | None = None
    # Whether a sign-in adds someone who is not a member (again, after an admin removed them).
    jit_membership: bool = True


@dataclass(frozen=True)
class OIDCSettings(MembershipSettings):
    issuer: str
    # Where the discovery document is, when not at {issuer}/.well-known/openid-configuration.
    discovery_url: str | None = None


@dataclass(frozen=True)
class MicrosoftSettings(MembershipSettings):
    # "common", "organizations", "consumers" or a tenant id (a GUID).
    tenant: str
    authority: str
    # Tenant ids whose people may sign in through a multi-tenant ("common", "organizations") provider.
    allowed_tenants: list[str]
    allow_any_tenant: bool = False


@dataclass(frozen=True)
class GitHubSettings(KindSettings):
    # https://github.com, or a GitHub Enterprise Server's base URL.
    base_url: str

    @property
    def api_url(self) -> str:
        """github.com's API has a host of its own; GitHub Enterprise Server serves it under /api/v3."""
        return "https://api.github.com" if self.base_url == "https://github.com" else f"{self.base_url}/api/v3"


@dataclass(frozen=True)
class GoogleSettings(KindSettings):
    # The Google Workspace domain whose accounts alone may sign in (checked against the `hd` claim).
    hosted_domain: str | None = None


@dataclass(frozen=True)
class SAMLSettings(MembershipSettings):
    """A SAML 2.0 IdP (field names are the API's) and our service provider's public certificate for it."""

    idp_entity_id: str
    idp_sso_url: str
    idp_certificates: list[str]
    sp_certificate: str
    idp_slo_url: str | None = None
    # How the AuthnRequest goes to idp_sso_url (SAML Bindings §3.4, §3.5): "HTTP-Redirect" or "HTTP-POST".
    idp_sso_binding: str = "HTTP-Redirect"
    name_id_format: str | None = None
    allow_idp_initiated: bool = False


KIND_SETTINGS: dict[ProviderKind, type[KindSettings]] = {
    ProviderKind.OIDC: OIDCSettings,
    ProviderKind.MICROSOFT: MicrosoftSettings,
    ProviderKind.GITHUB: GitHubSettings,
    ProviderKind.GOOGLE: GoogleSettings,
    ProviderKind.SAML: SAMLSettings,
}


class IdentityProvider(UUIDPrimaryKey, Base):
    """An upstream identity provider people sign in with: platform-wide (organization_id None) or
    an organization's own connection."""

    __tablename__ = "identity_providers"
    __table_args__ = (Index("ix_identity_providers_organization_id", "organization_id"),)

    kind: Mapped[ProviderKind] = mapped_column(
        Enum(ProviderKind, name="identity_provider_kind", native_enum=False, length=16,
             values_callable=lambda e: [m.value for m in e]))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"))
    # Shown on the sign-in button.
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Our client registration at the upstream (OAuth 2.0 and OIDC kinds; None for kinds without one).
    client_id: Mapped[str | None] = mapped_column(String(255))
    client_secret_ciphertext: Mapped[str | None] = mapped_column(Text, info=ENCRYPTED)
    # saml: our service provider's private key for this connection (PEM), which signs AuthnRequests.
    sp_private_key_ciphertext: Mapped[str | None] = mapped_column(Text, info=ENCRYPTED)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Whether an email this provider proved verified may link to a local account with that email.
    trust_email: Mapped[bool] = mapped_column(Boolean, default=False)
    # Whether a first sign-in without a local account creates one (just in time).
    allow_signup: Mapped[bool] = mapped_column(Boolean, default=True)
    # The kind's settings (KIND_SETTINGS); see the module docstring.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def kind_settings(self) -> KindSettings:
        return KIND_SETTINGS[ProviderKind(self.kind)].from_json(self.settings)

    @property
    def client_secret_set(self) -> bool:
        return self.client_secret_ciphertext is not None

    def callback_url(self, issuer: str) -> str:
        """The redirect URI to register at the upstream (`issuer` is ours): where it sends people back."""
        return f"{issuer.rstrip('/')}/federation/{self.id}/callback"

    def saml_url(self, issuer: str, endpoint: str) -> str:
        """Our SAML endpoint `endpoint` (metadata, acs, sls) for this connection; the metadata URL is also
        our entity id."""
        return f"{issuer.rstrip('/')}/saml/{self.id}/{endpoint}"


class ExternalIdentity(UUIDPrimaryKey, Base):
    """A person at an upstream provider, linked to a local account. Sign-in finds people by
    (provider, subject) only, never by email."""

    __tablename__ = "external_identities"
    __table_args__ = (
        UniqueConstraint("provider_id", "subject"),
        Index("ix_external_identities_user_id", "user_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    provider_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_providers.id", ondelete="CASCADE"))
    # The provider's stable id of the person (OIDC `sub`, Microsoft tid+oid, GitHub's numeric id, a SAML
    # NameID: SAML Core §8.3.7 allows 256 characters).
    subject: Mapped[str] = mapped_column(String(512))
    # The email the provider asserted when the identity was linked, for the person's own records.
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()
    provider: Mapped[IdentityProvider] = relationship()


class FederationState(UUIDPrimaryKey, Base):
    """A sign-in sent to an upstream provider and not yet back: its `state` parameter, hashed (SHA-256),
    so that each comes back at most once and within its lifetime. The browser keeps the clear value,
    the nonce and the PKCE verifier in its signed session: a state is good only in the browser it was
    made for."""

    __tablename__ = "federation_states"

    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_providers.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # saml: the state is the RelayState and the answer is a cross-site POST, which carries no Lax cookie,
    # so the AuthnRequest's ID (the InResponseTo it must come back with) and where to go next stay here.
    saml_request_id: Mapped[str | None] = mapped_column(String(64))
    next_url: Mapped[str | None] = mapped_column(String(2048))


class SAMLAssertionUse(UUIDPrimaryKey, Base):
    """An assertion ID accepted once, kept until the assertion expires: a replayed one is refused
    (SAML Profiles §4.1.4.5). The database is the cache every instance shares."""

    __tablename__ = "saml_assertion_uses"
    __table_args__ = (UniqueConstraint("provider_id", "assertion_id"),)

    provider_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identity_providers.id", ondelete="CASCADE"))
    # SAML Core §1.3.4: an xs:ID; python3-saml's own ids are 43 characters.
    assertion_id: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
