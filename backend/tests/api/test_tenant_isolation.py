"""Tenant isolation: every organization endpoint, called by every kind of outsider and insider.

The matrix is generated from the registered routes: every /api rule with `<org_id>`
in its path must be guarded by require_org_permission (its view carries
`org_permission`) and must have a sample request below, so a new organization
endpoint without a check fails here.

For each operation on organization A:
- anonymous callers get 401;
- outsiders (no membership, or members and owners of organization B) get 404,
  exactly like an unknown organization, and learn nothing about A;
- members of A whose role (member, a custom role, admin) lacks the permission the operation
  needs (REQUIRED_PERMISSIONS, written down here, not read from the code) get 403;
- A's owner naming B's sub-resources (member, role, invitation, client, connection, domain) under A's
  path gets 404;
and none of these refused requests changes a row.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (IdentityProvider, Invitation, Membership, OAuthClient, Organization, OrganizationDomain, Role,
                        User)
from app.models.base import utcnow
from app.security.tokens import hash_token, new_token
from app.services import organizations
from tests import factories
from tests.api.routes import Operation, api_operations, collection_app, fill_rule, plain_rule, rule_variables
from tests.saml_idp import TestIdP

ORG_PREFIX = "/api/v1/organizations/<org_id>"
SAML_IDP = TestIdP()


def _org_operations() -> list[Operation]:
    return [op for op in api_operations(collection_app()) if "org_id" in rule_variables(op.rule)]


ORG_OPERATIONS = _org_operations()

# The permission each operation needs, written down here rather than read back from the code
# under test: weakening a guard must fail this file. Every organization operation is listed.
REQUIRED_PERMISSIONS: dict[tuple[str, str], str] = {
    ("GET", ORG_PREFIX): "org:read",
    ("PATCH", ORG_PREFIX): "org:update",
    ("DELETE", ORG_PREFIX): "org:delete",
    ("GET", f"{ORG_PREFIX}/audit-events"): "audit:read",
    ("GET", f"{ORG_PREFIX}/clients"): "clients:read",
    ("POST", f"{ORG_PREFIX}/clients"): "clients:write",
    ("GET", f"{ORG_PREFIX}/clients/<client_id>"): "clients:read",
    ("PATCH", f"{ORG_PREFIX}/clients/<client_id>"): "clients:write",
    ("DELETE", f"{ORG_PREFIX}/clients/<client_id>"): "clients:write",
    ("POST", f"{ORG_PREFIX}/clients/<client_id>/secret"): "clients:write",
    ("POST", f"{ORG_PREFIX}/invitations"): "members:invite",
    ("GET", f"{ORG_PREFIX}/invitations"): "members:invite",
    ("DELETE", f"{ORG_PREFIX}/invitations/<invitation_id>"): "members:invite",
    ("GET", f"{ORG_PREFIX}/members"): "members:read",
    ("POST", f"{ORG_PREFIX}/members"): "members:invite",
    # Removing someone else; leaving (your own id) needs only the membership, so the guard is org:read.
    ("DELETE", f"{ORG_PREFIX}/members/<user_id>"): "members:remove",
    ("PATCH", f"{ORG_PREFIX}/members/<user_id>/role"): "members:update_role",
    ("GET", f"{ORG_PREFIX}/roles"): "roles:read",
    ("POST", f"{ORG_PREFIX}/roles"): "roles:write",
    ("PATCH", f"{ORG_PREFIX}/roles/<role_id>"): "roles:write",
    ("DELETE", f"{ORG_PREFIX}/roles/<role_id>"): "roles:write",
    ("GET", f"{ORG_PREFIX}/identity-providers"): "connections:read",
    ("POST", f"{ORG_PREFIX}/identity-providers"): "connections:write",
    ("GET", f"{ORG_PREFIX}/identity-providers/<provider_id>"): "connections:read",
    ("PATCH", f"{ORG_PREFIX}/identity-providers/<provider_id>"): "connections:write",
    ("DELETE", f"{ORG_PREFIX}/identity-providers/<provider_id>"): "connections:write",
    ("GET", f"{ORG_PREFIX}/domains"): "connections:read",
    ("POST", f"{ORG_PREFIX}/domains"): "connections:write",
    ("GET", f"{ORG_PREFIX}/domains/<domain_id>"): "connections:read",
    ("PATCH", f"{ORG_PREFIX}/domains/<domain_id>"): "connections:write",
    ("POST", f"{ORG_PREFIX}/domains/<domain_id>/verify"): "connections:write",
    ("DELETE", f"{ORG_PREFIX}/domains/<domain_id>"): "connections:write",
}
# Operations whose guard lets every member through because the service decides (self-service).
SELF_SERVICE_GUARDS = {("DELETE", f"{ORG_PREFIX}/members/<user_id>"): "org:read"}

# A well-formed request body (None: the operation takes none) for every POST, PATCH and PUT,
# keyed by (method, rule without converters).
# Bodies are valid, so a refusal can only come from the access check.
SAMPLE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("PATCH", ORG_PREFIX): {"name": "Renamed"},
    ("POST", f"{ORG_PREFIX}/members"): {"email": "newcomer@example.com", "role": "member"},
    ("PATCH", f"{ORG_PREFIX}/members/<user_id>/role"): {"role": "admin"},
    ("POST", f"{ORG_PREFIX}/roles"): {"name": "auditor", "description": "Reads the trail",
                                      "permissions": ["audit:read"]},
    ("PATCH", f"{ORG_PREFIX}/roles/<role_id>"): {"description": "Changed"},
    ("POST", f"{ORG_PREFIX}/invitations"): {"email": "invitee@example.com", "role": "member"},
    ("POST", f"{ORG_PREFIX}/clients"): {"name": "New app", "client_type": "confidential",
                                        "redirect_uris": ["https://new.example.com/cb"],
                                        "grant_types": ["authorization_code"], "scopes": ["openid"]},
    ("PATCH", f"{ORG_PREFIX}/clients/<client_id>"): {"name": "Renamed app"},
    ("POST", f"{ORG_PREFIX}/clients/<client_id>/secret"): None,
    ("POST", f"{ORG_PREFIX}/identity-providers"): {"kind": "saml", "name": "Corp SAML",
                                                   "idp_entity_id": SAML_IDP.entity_id, "idp_sso_url": SAML_IDP.sso_url,
                                                   "idp_certificates": [SAML_IDP.certificate_pem]},
    ("PATCH", f"{ORG_PREFIX}/identity-providers/<provider_id>"): {"name": "Renamed SSO"},
    ("POST", f"{ORG_PREFIX}/domains"): {"domain": "newly-claimed.example"},
    ("PATCH", f"{ORG_PREFIX}/domains/<domain_id>"): {"auto_redirect": True},
    # The tenants' domains are verified: verify answers them without DNS.
    ("POST", f"{ORG_PREFIX}/domains/<domain_id>/verify"): None,
}


@dataclass
class Tenant:
    organization: Organization
    owner: User
    admin: User
    member: User
    # A plain member whom the member operations act on (never one of the callers).
    target: User
    # Holds the custom role "support" (members:read only).
    support: User
    custom_role: Role
    invitation: Invitation
    client: OAuthClient
    connection: IdentityProvider
    # Verified, routed to `connection`.
    domain: OrganizationDomain


def _tenant(db_session: Session, slug: str) -> Tenant:
    owner, admin, member = (factories.UserFactory(email=f"{who}@{slug}.example") for who in ("owner", "admin", "member"))
    organization = factories.create_organization(db_session, owner=owner, slug=slug)
    factories.add_member(db_session, organization, admin, "admin")
    factories.add_member(db_session, organization, member, "member")
    target = factories.UserFactory(email=f"target@{slug}.example")
    factories.add_member(db_session, organization, target, "member")
    custom_role = factories.create_role(db_session, organization, "support", ["members:read"])
    support = factories.UserFactory(email=f"support@{slug}.example")
    factories.add_member(db_session, organization, support, "support")
    invitation = Invitation(organization_id=organization.id, email=f"pending@{slug}.example",
                            role_id=organizations.builtin_role(db_session, organization.id, "member").id,
                            token_hash=hash_token(new_token()), invited_by_user_id=owner.id,
                            expires_at=utcnow() + timedelta(days=1))
    db_session.add(invitation)
    db_session.commit()
    client = factories.OAuthClientFactory(organization_id=organization.id, name=f"{slug} app")
    connection = IdentityProvider(kind="oidc", organization_id=organization.id, name=f"{slug} SSO",
                                  client_id=f"{slug}-client", scopes=["openid"],
                                  settings={"issuer": f"https://sso.{slug}.example", "discovery_url": None})
    db_session.add(connection)
    db_session.flush()
    domain = OrganizationDomain(organization_id=organization.id, domain=f"{slug}.example",
                                verification_token=new_token(), verified_at=utcnow(),
                                identity_provider_id=connection.id)
    db_session.add(domain)
    db_session.commit()
    return Tenant(organization, owner, admin, member, target, support, custom_role, invitation, client, connection,
                  domain)


@pytest.fixture
def tenants(db_session: Session) -> tuple[Tenant, Tenant]:
    # An existing user the add-member sample can add (valid input: refusals come from access checks only).
    factories.UserFactory(email="newcomer@example.com")
    return _tenant(db_session, "alpha"), _tenant(db_session, "bravo")


def _path(operation: Operation, tenant: Tenant, resources: Tenant | None = None) -> str:
    """The operation's URL on `tenant`'s organization, naming `resources`' sub-resources (default: its own)."""
    resources = resources or tenant
    values = {
        "org_id": str(tenant.organization.id),
        "user_id": str(resources.target.id),
        "role_id": str(resources.custom_role.id),
        "invitation_id": str(resources.invitation.id),
        "client_id": resources.client.client_id,
        "provider_id": str(resources.connection.id),
        "domain_id": str(resources.domain.id),
    }
    unknown = set(rule_variables(operation.rule)) - values.keys()
    assert not unknown, f"no sample value for {unknown} in {operation.rule}: add one here"
    return fill_rule(operation.rule, values)


def _snapshot(db_session: Session) -> dict[str, list[tuple]]:
    """Every row an organization endpoint could change (the audit trail may record refusals)."""
    db_session.expire_all()
    snapshot = {}
    for model in (Organization, Role, Membership, Invitation, OAuthClient, User, IdentityProvider, OrganizationDomain):
        rows = db_session.scalars(select(model).order_by(model.id)).all()
        columns = [c.key for c in model.__table__.columns]
        snapshot[model.__tablename__] = [tuple(getattr(row, c) for c in columns) for row in rows]
    return snapshot


def _call(api, operation: Operation, path: str, token: str | None):
    body = SAMPLE_BODIES.get((operation.method, plain_rule(operation.rule)))
    return api.request(operation.method, path, token=token, json=body)


def _op_id(operation: Operation) -> str:
    return f"{operation.method} {operation.rule}"


def test_every_organization_operation_is_guarded_and_has_a_sample():
    assert ORG_OPERATIONS, "no organization routes found"
    app = collection_app()
    unguarded = [_op_id(op) for op in ORG_OPERATIONS if not hasattr(op.view(app), "org_permission")]
    assert unguarded == [], f"organization routes without require_org_permission: {unguarded}"
    missing = [_op_id(op) for op in ORG_OPERATIONS
               if op.method in {"POST", "PATCH", "PUT"} and (op.method, plain_rule(op.rule)) not in SAMPLE_BODIES]
    assert missing == [], f"add a sample body for: {missing}"
    unlisted = [_op_id(op) for op in ORG_OPERATIONS if (op.method, plain_rule(op.rule)) not in REQUIRED_PERMISSIONS]
    assert unlisted == [], f"add the permission these need to REQUIRED_PERMISSIONS: {unlisted}"
    wrong_guards = [(_op_id(op), op.view(app).org_permission) for op in ORG_OPERATIONS
                    if op.view(app).org_permission != _guard_permission(op)]
    assert wrong_guards == [], wrong_guards


@pytest.mark.parametrize("operation", ORG_OPERATIONS, ids=_op_id)
def test_anonymous_and_bad_tokens_get_401(api, tenants, db_session, operation):
    alpha, _ = tenants
    before = _snapshot(db_session)
    for token in (None, "not-a-session-token", "a.b.c"):
        response = _call(api, operation, _path(operation, alpha), token)
        assert response.status == 401, (token, response.body)
        assert response.error_type == "AUTHENTICATION_ERROR"
    assert _snapshot(db_session) == before


@pytest.mark.parametrize("operation", ORG_OPERATIONS, ids=_op_id)
def test_outsiders_get_404_and_learn_nothing(api, tenants, db_session, operation):
    alpha, bravo = tenants
    loner = factories.UserFactory(email="loner@example.com")
    before = _snapshot(db_session)
    secrets = {str(alpha.organization.id), alpha.organization.slug, alpha.organization.name, alpha.member.email,
               alpha.client.client_id, alpha.client.name, str(alpha.connection.id), alpha.connection.name,
               str(alpha.domain.id), alpha.domain.domain}
    for outsider in (loner, bravo.owner, bravo.admin, bravo.member):
        response = _call(api, operation, _path(operation, alpha), factories.session_token(outsider))
        assert response.status == 404, (outsider.email, response.body)
        assert response.error_type == "NOT_FOUND"
        # The same answer as for an organization that does not exist.
        unknown = _call(api, operation, _path(operation, alpha).replace(str(alpha.organization.id),
                                                                        str(uuid.uuid4()), 1),
                        factories.session_token(outsider))
        assert unknown.status == 404 and unknown.body["message"] == response.body["message"]
        leaked = [s for s in secrets if s in json.dumps(response.body)]
        assert leaked == [], leaked
    assert _snapshot(db_session) == before


def _role_permissions(db_session: Session, user: User, organization: Organization) -> frozenset[str]:
    membership = organizations.get_membership(db_session, organization_id=organization.id, user_id=user.id)
    return organizations.role_permissions(membership.role)


def _required_permission(operation: Operation) -> str:
    return REQUIRED_PERMISSIONS[(operation.method, plain_rule(operation.rule))]


def _guard_permission(operation: Operation) -> str:
    key = (operation.method, plain_rule(operation.rule))
    return SELF_SERVICE_GUARDS.get(key, REQUIRED_PERMISSIONS[key])


# Every insider of `tenants` (member, support, admin) holds these: an operation that needs only one of
# them has nobody to refuse, so the 403 test below leaves it out rather than pass without a check.
HELD_BY_EVERY_INSIDER = {"org:read", "members:read"}


@pytest.mark.parametrize("operation", [op for op in ORG_OPERATIONS
                                       if _required_permission(op) not in HELD_BY_EVERY_INSIDER], ids=_op_id)
def test_members_without_the_permission_get_403(api, tenants, db_session, operation):
    alpha, _ = tenants
    permission = _required_permission(operation)
    before = _snapshot(db_session)
    refused = []
    for insider in (alpha.member, alpha.support, alpha.admin):
        if permission in _role_permissions(db_session, insider, alpha.organization):
            continue
        response = _call(api, operation, _path(operation, alpha), factories.session_token(insider))
        assert response.status == 403, (insider.email, response.body)
        assert response.error_type == "PERMISSION_DENIED"
        refused.append(insider.email)
    assert refused, "no insider lacks the permission: the operation belongs in HELD_BY_EVERY_INSIDER"
    assert _snapshot(db_session) == before


@pytest.mark.parametrize("caller", ["owner", "platform_admin"])
@pytest.mark.parametrize("operation", ORG_OPERATIONS, ids=_op_id)
def test_owners_and_platform_admins_pass_the_guard(api, tenants, db_session, operation, caller):
    """The other side of the matrix: the guard is not simply refusing everyone."""
    alpha, _ = tenants
    user = alpha.owner if caller == "owner" else factories.UserFactory(is_platform_admin=True)
    response = _call(api, operation, _path(operation, alpha), factories.session_token(user))
    assert response.status not in {401, 403, 404} and response.status < 500, response.body


SUB_RESOURCE_OPERATIONS = [op for op in ORG_OPERATIONS if set(rule_variables(op.rule)) - {"org_id"}]


@pytest.mark.parametrize("operation", SUB_RESOURCE_OPERATIONS, ids=_op_id)
def test_another_organizations_resources_are_404_under_ones_own(api, tenants, db_session, operation):
    alpha, bravo = tenants
    before = _snapshot(db_session)
    for caller, home, foreign in ((alpha.owner, alpha, bravo), (bravo.owner, bravo, alpha)):
        response = _call(api, operation, _path(operation, home, resources=foreign), factories.session_token(caller))
        assert response.status == 404, (caller.email, response.body)
        assert response.error_type == "NOT_FOUND"
    assert _snapshot(db_session) == before


# --- personal API keys (X-API-Key): the key acts as its user, so the same matrix holds ---

KEY_OPERATIONS = [op for op in ORG_OPERATIONS if hasattr(op.view(collection_app()), "api_key_scope")]


def _call_with_key(api, operation: Operation, path: str, key: str):
    body = SAMPLE_BODIES.get((operation.method, plain_rule(operation.rule)))
    return api.request(operation.method, path, headers={"X-API-Key": key}, json=body)


@pytest.mark.parametrize("operation", KEY_OPERATIONS, ids=_op_id)
def test_outsiders_keys_with_every_scope_get_404(api, tenants, db_session, operation):
    alpha, bravo = tenants
    keys = [factories.api_key(db_session, outsider)[1]
            for outsider in (factories.UserFactory(email="loner@example.com"), bravo.owner)]
    before = _snapshot(db_session)
    for key in keys:
        response = _call_with_key(api, operation, _path(operation, alpha), key)
        assert response.status == 404, response.body
    assert _snapshot(db_session) == before


@pytest.mark.parametrize("operation", [op for op in KEY_OPERATIONS
                                       if _required_permission(op) not in HELD_BY_EVERY_INSIDER], ids=_op_id)
def test_members_keys_without_the_permission_get_403(api, tenants, db_session, operation):
    alpha, _ = tenants
    permission = _required_permission(operation)
    keys = {insider.email: factories.api_key(db_session, insider)[1]
            for insider in (alpha.member, alpha.support, alpha.admin)
            if permission not in _role_permissions(db_session, insider, alpha.organization)}
    before = _snapshot(db_session)
    for email, key in keys.items():
        response = _call_with_key(api, operation, _path(operation, alpha), key)
        # The role refuses, not the key (which would name the scope in the details).
        assert response.status == 403 and response.body["error"]["details"] == {}, (email, response.body)
    assert keys, "no insider lacks the permission: the operation belongs in HELD_BY_EVERY_INSIDER"
    assert _snapshot(db_session) == before


@pytest.mark.parametrize("operation", KEY_OPERATIONS, ids=_op_id)
def test_owners_keys_with_every_scope_pass_the_guard(api, tenants, db_session, operation):
    alpha, _ = tenants
    _, key = factories.api_key(db_session, alpha.owner)

    response = _call_with_key(api, operation, _path(operation, alpha), key)

    assert response.status not in {401, 403, 404} and response.status < 500, response.body
