"""Schemathesis over /api/openapi.json: every documented operation, called in-process (WSGI), as an
organization owner and as a platform administrator.

Each operation is one test item with a fresh app and database holding one organization with a member,
a custom role, a pending invitation and a client, plus a platform client. Path ids are the real ones
for most cases (the rest keep the generated value, which exercises 404s), and every case signs in
with a new session, so a fuzzed logout or token rotation does not end the later cases.

Checks: no 5xx; the status code is documented for the operation; the body matches the documented
schema for that status and media type; data the document calls valid is not refused as invalid
(400/422: schemathesis's positive_data_acceptance); and every /api response except the two raw
documentation routes is in the envelope. Deterministic (derandomized, fixed seed) and bounded:
MAX_EXAMPLES per operation in the fuzzing phase, plus the coverage phase's boundary cases.

The totals (operations, requests, 5xx) are printed in pytest's terminal summary (tests/fuzz/conftest.py).
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import load_all_checks
from sqlalchemy.orm import Session

from app.models import Invitation, OrganizationDomain, User
from app.models.base import utcnow
from app.security.tokens import hash_token, new_token
from app.services import organizations
from tests import factories
from tests.api.routes import collection_app
from tests.conftest import assert_envelope

MAX_EXAMPLES = 8
# Documentation routes answered raw, as documented: the document itself and its HTML rendering.
RAW_ROUTES = {"/api/openapi.json", "/api/docs"}

load_all_checks()
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance]

# Rules the document states in words because JSON Schema cannot express them: a 422 for data the
# schema allows is accepted only when every field it names is listed here for the operation.
PASSWORD_RULE = {"password", "new_password"}  # at most 72 bytes in UTF-8, and not a common password
CLIENT_RULES = {"grant_types", "redirect_uris", "scopes", "jwks", "token_endpoint_auth_method"}  # between fields
ROLE_REFERENCE = {"role"}  # must name a role that exists in the organization
# Which fields each provider kind takes and requires (the operations' descriptions say so).
PROVIDER_RULES = {"kind", "name", "client_id", "client_secret", "scopes", "issuer", "discovery_url", "tenant",
                  "allowed_tenants", "allow_any_tenant", "authority", "base_url", "hosted_domain", "idp_entity_id",
                  "idp_sso_url", "idp_sso_binding", "idp_slo_url", "idp_certificates", "idp_metadata_xml",
                  "idp_metadata_url", "attribute_mapping", "name_id_format",
                  "default_role", "group_role_map", "jit_membership", "allow_idp_initiated"}
RULES_IN_WORDS = {
    "POST /api/v1/auth/register": PASSWORD_RULE,
    "POST /api/v1/auth/password/reset": PASSWORD_RULE,
    "POST /api/v1/users/me/password": PASSWORD_RULE,
    "POST /api/v1/invitations/accept": PASSWORD_RULE | {"name"},  # signed in, send only the token
    "POST /api/v1/clients": CLIENT_RULES,
    "PATCH /api/v1/clients/{client_id}": CLIENT_RULES | {"first_party"},  # a platform client only
    "POST /api/v1/organizations/{org_id}/clients": CLIENT_RULES,
    "PATCH /api/v1/organizations/{org_id}/clients/{client_id}": CLIENT_RULES,
    "POST /api/v1/organizations/{org_id}/members": ROLE_REFERENCE,
    "PATCH /api/v1/organizations/{org_id}/members/{user_id}/role": ROLE_REFERENCE,
    "POST /api/v1/organizations/{org_id}/invitations": ROLE_REFERENCE,
    "GET /api/v1/organizations/{org_id}/audit-events": {"until"},  # not before since
    "GET /api/v1/admin/audit-events": {"until"},  # not before since
    "POST /api/v1/users/me/api-keys": {"expires_at"},  # in the future, within MAX_EXPIRY_DAYS
    "POST /api/v1/users/me/email": {"email"},  # not the current address
    "POST /api/v1/identity-providers": PROVIDER_RULES,
    "PATCH /api/v1/identity-providers/{provider_id}": PROVIDER_RULES,
    "POST /api/v1/organizations/{org_id}/identity-providers": PROVIDER_RULES,
    "PATCH /api/v1/organizations/{org_id}/identity-providers/{provider_id}": PROVIDER_RULES,
    "POST /api/v1/organizations/{org_id}/domains": {"domain"},  # not a public mail provider's
    "PATCH /api/v1/organizations/{org_id}/domains/{domain_id}": {"identity_provider_id"},  # the org's connection
}

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", collection_app(), config=schemathesis.Config.from_dict({
    "seed": 12,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    # Undocumented methods (405 in the envelope) are tested in tests/api/test_envelope.py.
    "phases": {"stateful": {"enabled": False}, "coverage": {"unexpected-methods": []}},
}))


@dataclass
class Totals:
    """What the harness did, for the terminal summary."""

    operations: set[str] = field(default_factory=set)
    requests: int = 0
    server_errors: int = 0
    by_persona: dict[str, int] = field(default_factory=dict)


TOTALS = Totals()


@dataclass
class World:
    """The rows the fuzzed requests act on, by id, and who calls."""

    db: Session
    caller_id: uuid.UUID
    path_ids: dict[str, list[str]]

    def session_token(self) -> str:
        token = new_token()
        factories.UserSessionFactory(user=self.db.get(User, self.caller_id), token=token)
        return token

    def fill_path_ids(self, path_parameters: dict[str, object]) -> None:
        """Replace three generated path ids in four by a real one (chosen from the generated value,
        so the choice is as deterministic as the generation)."""
        for name, value in path_parameters.items():
            real = self.path_ids.get(name)
            pick = zlib.crc32(repr(value).encode())
            if real and pick % 4:
                path_parameters[name] = real[pick % len(real)]


def _world(db: Session, persona: str) -> World:
    owner = factories.UserFactory(email="owner@example.com")
    platform_admin = factories.UserFactory(email="operator@example.com", is_platform_admin=True)
    member = factories.UserFactory(email="member@example.com")
    org = factories.create_organization(db, owner=owner, slug="acme")
    factories.add_member(db, org, member)
    support = factories.create_role(db, org, "support", ["members:read"])
    invitation = Invitation(organization_id=org.id, email="invitee@example.com", role_id=support.id,
                            token_hash=hash_token(new_token()), invited_by_user_id=owner.id,
                            expires_at=utcnow() + timedelta(days=7))
    db.add(invitation)
    org_client = factories.OAuthClientFactory(organization_id=org.id)
    platform_client = factories.OAuthClientFactory()
    member_role = organizations.builtin_role(db, org.id, "member")
    # Verified already, so verify answers it without DNS.
    domain = OrganizationDomain(organization_id=org.id, domain="acme.example", verification_token=new_token(),
                                verified_at=utcnow())
    db.add(domain)
    caller = owner if persona == "owner" else platform_admin
    own_session = factories.UserSessionFactory(user=caller)
    own_key, _ = factories.api_key(db, caller)
    path_ids = {
        "org_id": [str(org.id)],
        "user_id": [str(member.id), str(owner.id)],
        "role_id": [str(support.id), str(member_role.id)],
        "invitation_id": [str(invitation.id)],
        "client_id": [org_client.client_id, platform_client.client_id],
        "session_id": [str(own_session.id)],
        "key_id": [str(own_key.id)],
        "domain_id": [str(domain.id)],
    }
    world = World(db=db, caller_id=caller.id, path_ids=path_ids)
    db.close()  # hold no SQLite lock while the app serves
    return world


@pytest.fixture
def owner_world(db_session: Session) -> World:
    """Set up once per operation: Hypothesis shares a test's fixtures across its examples."""
    return _world(db_session, "owner")


@pytest.fixture
def platform_admin_world(db_session: Session) -> World:
    return _world(db_session, "platform admin")


def _call(case, app, world: World, persona: str) -> None:
    world.fill_path_ids(case.path_parameters or {})
    token = world.session_token()
    world.db.close()
    # Each persona calls with its session only: schemathesis fills in the apiKey scheme's header too, and a
    # key beside a bearer token is refused (400). Keys are tested in tests/api/test_api_keys.py.
    if case.headers:
        case.headers.pop("X-API-Key", None)
    response = case.call(app=app, headers={"Authorization": f"Bearer {token}"})
    TOTALS.operations.add(case.operation.label)
    TOTALS.requests += 1
    TOTALS.by_persona[persona] = TOTALS.by_persona.get(persona, 0) + 1
    TOTALS.server_errors += response.status_code >= 500
    case.validate_response(response, checks=CHECKS)
    _assert_schema_valid_input_accepted(case, response)
    if case.path not in RAW_ROUTES and case.method.upper() != "HEAD":
        assert response.headers.get("content-type") == ["application/json"], (case.method, response.headers)
        assert_envelope(response.json(), response.status_code, {"X-Request-ID": response.headers["x-request-id"][0]})


def _assert_schema_valid_input_accepted(case, response) -> None:
    """Input the document calls valid is not refused as invalid (400/422), except by a rule it states
    in words (RULES_IN_WORDS); like schemathesis's positive_data_acceptance, with those exceptions."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code not in (400, 422):
        return
    if response.status_code == 400 and _has_nul_member_name(case.body):
        return  # refused at the edge, as the 400 says; OpenAPI 3.0 has no propertyNames to state it in
    fields = set(response.json()["error"]["details"])
    assert response.status_code == 422 and fields <= RULES_IN_WORDS.get(case.operation.label, set()), (
        f"{case.operation.label} refused schema-valid input: {response.status_code} {response.text}")


def _has_nul_member_name(value) -> bool:
    if isinstance(value, dict):
        return any("\x00" in name or _has_nul_member_name(member) for name, member in value.items())
    if isinstance(value, list):
        return any(_has_nul_member_name(item) for item in value)
    return False


# Each persona over the operations its role reaches: an owner is refused /api/v1/clients (403) before
# the input is read, and a platform administrator who is no member finds no organization (404).
PLATFORM_CLIENTS = r"^/api/v1/clients"
ORGANIZATION_SCOPED = r"^/api/v1/organizations/\{org_id\}"


@schema.exclude(path_regex=PLATFORM_CLIENTS).parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_as_organization_owner(case, app, owner_world):
    _call(case, app, owner_world, "owner")


@schema.exclude(path_regex=ORGANIZATION_SCOPED).parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_as_platform_admin(case, app, platform_admin_world):
    _call(case, app, platform_admin_world, "platform admin")
