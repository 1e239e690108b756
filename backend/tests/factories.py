"""factory_boy factories, one per model.

They commit (not just flush): requests run on their own connections and must
see the rows (see conftest.py on why tests truncate instead of rolling back).
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import datetime, timedelta

import factory
from flask import Flask
from joserfc import jwt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import (ApiKey, IdentityProvider, Membership, OAuthClient, Organization, OrganizationDomain,
                        RefreshToken, Role, SessionKind, User, UserSession)
from app.models.base import utcnow
from app.security import api_keys as key_format
from app.security.passwords import hash_password
from app.security.tokens import hash_token, new_token
from app.services import grants, organizations
from app.services.actor import Actor
from app.stores.keysets import one_key_keyset

DEFAULT_PASSWORD = "correct horse battery staple"
# Hashed once: bcrypt at cost 4 is cheap, but not free across hundreds of users.
_DEFAULT_HASH = hash_password(DEFAULT_PASSWORD, 4)


class BaseFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "commit"


def bind(session: Session) -> None:
    """Point every factory at the test's session."""
    for factory_cls in (UserFactory, UserSessionFactory, OAuthClientFactory):
        factory_cls._meta.sqlalchemy_session = session


class UserFactory(BaseFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Sequence(lambda n: f"User {n}")
    password_hash = _DEFAULT_HASH
    email_verified = True


class UserSessionFactory(BaseFactory):
    """A live API session. Pass `token=` to know the bearer token; only its hash is stored."""

    class Meta:
        model = UserSession

    class Params:
        token = factory.LazyFunction(new_token)

    user = factory.SubFactory(UserFactory)
    token_hash = factory.LazyAttribute(lambda o: hash_token(o.token))
    kind = SessionKind.API
    created_at = factory.LazyFunction(utcnow)
    last_seen_at = factory.LazyAttribute(lambda o: o.created_at)
    expires_at = factory.LazyAttribute(lambda o: o.created_at + timedelta(minutes=15))
    absolute_expires_at = factory.LazyAttribute(lambda o: o.created_at + timedelta(hours=8))
    ip = "192.0.2.10"
    user_agent = "factory-agent/1.0"


DEFAULT_CLIENT_SECRET = "test-client-secret-" + "s" * 32


class OAuthClientFactory(BaseFactory):
    """A confidential client_secret_basic web app whose secret is DEFAULT_CLIENT_SECRET.

    OAuthClientFactory(public=True) makes a public (auth method none) client instead;
    pass client_secret=... for another secret.
    """

    # Not a model field: the plain secret behind the default client_secret_hash.
    DEFAULT_CLIENT_SECRET = DEFAULT_CLIENT_SECRET

    class Meta:
        model = OAuthClient
        exclude = ("DEFAULT_CLIENT_SECRET",)

    class Params:
        client_secret = DEFAULT_CLIENT_SECRET
        public = factory.Trait(token_endpoint_auth_method="none", client_secret=None)

    client_id = factory.Sequence(lambda n: f"test-client-{n}")
    client_secret_hash = factory.LazyAttribute(lambda o: hash_token(o.client_secret) if o.client_secret else None)
    name = factory.Sequence(lambda n: f"Client {n}")
    redirect_uris = factory.LazyFunction(lambda: ["https://app.example.com/callback"])
    post_logout_redirect_uris = factory.LazyFunction(lambda: ["https://app.example.com/"])
    grant_types = factory.LazyFunction(lambda: ["authorization_code", "refresh_token"])
    response_types = factory.LazyFunction(lambda: ["code"])
    scopes = factory.LazyFunction(lambda: ["openid", "profile", "email", "offline_access"])
    token_endpoint_auth_method = "client_secret_basic"
    require_pkce = True
    first_party = False
    id_token_signed_response_alg = "RS256"


def create_organization(session: Session, *, owner: User, slug: str, name: str | None = None) -> Organization:
    """An organization made as the API makes one (built-in roles, `owner` as its owner), committed."""
    organization = organizations.create_organization(session, actor=Actor(user=owner), name=name or slug.title(),
                                                     slug=slug)
    session.commit()
    return organization


def add_member(session: Session, organization: Organization, user: User, role: str = "member") -> Membership:
    """Make `user` a member of `organization` with the role of this name (built-in or custom), committed."""
    role_row = session.scalars(select(Role).where(Role.organization_id == organization.id, Role.name == role)).one()
    membership = Membership(organization_id=organization.id, user_id=user.id, role_id=role_row.id)
    session.add(membership)
    session.commit()
    return membership


def access_of(session: Session, user: User, organization: Organization) -> organizations.Access:
    """What `user` may do in `organization`, as the API's guard decides it."""
    return organizations.require_access(session, user=user, organization_id=organization.id, permission="org:read")


def demote_meanwhile(session: Session, organization: Organization, user: User, role: str = "member") -> None:
    """Give the user `role` as a concurrent transaction would: a Core UPDATE that leaves the session's
    loaded Membership, and any Access made from it, as they were; only a fresh read sees the change."""
    session.execute(update(Membership)
                    .where(Membership.organization_id == organization.id, Membership.user_id == user.id)
                    .values(role_id=organizations.builtin_role(session, organization.id, role).id)
                    .execution_options(synchronize_session=False))


def create_role(session: Session, organization: Organization, name: str, permissions: list[str],
                description: str = "") -> Role:
    """A custom role of `organization`, committed."""
    role = Role(organization_id=organization.id, name=name, description=description, permissions=permissions)
    session.add(role)
    session.commit()
    return role


def verified_domain(session: Session, organization: Organization, domain: str,
                    connection: IdentityProvider | None = None, *, auto_redirect: bool = False,
                    enforce_sso: bool = False) -> OrganizationDomain:
    """`domain`, verified by `organization` and routed to `connection`, committed."""
    claimed = OrganizationDomain(organization_id=organization.id, domain=domain, verification_token=new_token(),
                                 verified_at=utcnow(), identity_provider_id=connection.id if connection else None,
                                 auto_redirect=auto_redirect, enforce_sso=enforce_sso)
    session.add(claimed)
    session.commit()
    return claimed


def session_token(user: User) -> str:
    """A live API session token for `user`."""
    token = new_token()
    UserSessionFactory(user=user, token=token)
    return token


def api_key(session: Session, user: User, scopes: list[str] | None = None, *,
            expires_at: datetime | None = None, name: str = "test key") -> tuple[ApiKey, str]:
    """A personal API key of `user` (every scope by default), committed; returns its row and the key."""
    generated = key_format.generate_key()
    row = ApiKey(user_id=user.id, name=name, prefix=generated.prefix, key_hash=generated.key_hash,
                 scopes=list(key_format.SCOPES) if scopes is None else scopes, expires_at=expires_at)
    session.add(row)
    session.commit()
    return row, generated.key


def access_token(app: Flask, *, user: User, organization: Organization | None = None,
                 scope: str = organizations.ORG_ADMIN_SCOPE, client_id: str = "test-client",
                 expires_in: int = 300, jti: str | None = None, typ: str = "at+jwt",
                 issuer: str | None = None) -> str:
    """An RFC 9068 access token for `user`, signed with the app's active key as the token endpoint
    signs them, carrying org_id when `organization` is given. A negative `expires_in` makes it expired;
    another `typ` makes it a JWT of ours that is no access token (an ID Token is typ JWT); another
    `issuer` one signed with our key for another issuer (the app's ISSUER by default)."""
    settings, signing = app.extensions["gatehouse.settings"], app.extensions["gatehouse.keys"].signing_key("RS256")
    now = int(time.time())
    claims = {"iss": issuer or settings.ISSUER, "sub": str(user.id), "aud": client_id, "client_id": client_id, "scope": scope,
              "iat": now, "exp": now + expires_in, "jti": jti or secrets.token_urlsafe(16)}
    if organization is not None:
        claims["org_id"] = str(organization.id)
    return jwt.encode({"alg": "RS256", "typ": typ, "kid": signing.kid}, claims, one_key_keyset(signing))


def issue_refresh_token(session: Session, *, client: OAuthClient, user: User, organization: Organization | None,
                        access_token_jti: str | None = None) -> RefreshToken:
    """A live refresh token (the first of a new family) issued to `user` in `organization`, committed.
    `access_token_jti` records an access token issued with it, valid for five more minutes."""
    row = grants.store_refresh_token(
        session, token=new_token(), family_id=uuid.uuid4(), client=client, user=user, scope="openid offline_access",
        auth_time=utcnow(), amr=["pwd"], lifetime=86400, access_token_jti=access_token_jti,
        access_token_expires_at=utcnow() + timedelta(minutes=5) if access_token_jti else None,
        organization_id=organization.id if organization else None)
    session.commit()
    return row
