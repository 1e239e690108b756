"""An organization's own OIDC connection to a second, real OpenID provider on loopback (another Gatehouse,
tests.live.conftest.second_gatehouse), over HTTP without a browser (requests plays one).

Acme's admin connects acme's corporate IdP through the organizations API (its issuer's discovery document
really fetched). The corporate IdP's ID tokens list the person's roles there in `org_roles` (its client is
owned by its organization "corp"), so acme's connection reads its groups from that claim
(attribute_mapping.groups) and maps corp's "engineering" to acme's "engineer". A relying party sends the
browser to the live Gatehouse with organization=acme; it goes straight to acme's connection, signs in at the
corporate IdP, comes back a member of acme with the mapped role, consents, and the relying party's ID and
access tokens carry acme.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AuditEvent, Membership, Organization, OrganizationDomain, Role, User
from app.models.base import utcnow
from app.security.tokens import new_token
from app.services import clients, organizations, users
from app.services.actor import Actor
from tests.live.conftest import LiveClient, _commit, _engine, second_gatehouse
from tests.live.flows import authorize
from tests.live.relying_party import Provider, discover, oauth_session, verify_access_token, verify_id_token

PAT_EMAIL = "pat@acme.example"
PAT_PASSWORD = "corporate horse battery staple"
ADMIN_EMAIL = "admin@acme.example"
ADMIN_PASSWORD = "acme admin horse battery staple"


@dataclass(frozen=True)
class AcmeConnection:
    issuer: str  # the corporate IdP's
    organization_id: str
    provider_id: str


def _corporate_idp(corp_app: Flask, callback_url: str) -> LiveClient:
    """At the corporate IdP: organization corp with a custom role "engineering" that Pat holds, and corp's
    own client for acme's connection."""
    def build(session: Session) -> LiveClient:
        owner = users.create_user(session, email="it@corp.example", password=PAT_PASSWORD, name="Corp IT",
                                  bcrypt_rounds=4)
        pat = users.create_user(session, email=PAT_EMAIL, password=PAT_PASSWORD, name="Pat Acme", bcrypt_rounds=4)
        pat.email_verified = True
        corp = organizations.create_organization(session, actor=Actor(user=owner), name="Corp", slug="corp")
        engineering = Role(organization_id=corp.id, name="engineering", description="", permissions=[])
        session.add(engineering)
        session.add(Membership(organization_id=corp.id, user_id=pat.id, role=engineering))
        issued = clients.create_client(session, actor=Actor(user=None), name="Acme at Gatehouse",
                                       client_type="confidential", redirect_uris=[callback_url],
                                       grant_types=["authorization_code"], scopes=["openid", "email", "profile"],
                                       organization_id=corp.id)
        return LiveClient(client_id=issued.client.client_id, client_secret=issued.client_secret,
                          redirect_uri=callback_url, scopes=tuple(issued.client.scopes))
    return _commit(corp_app, build)


@pytest.fixture
def acme_connection(tmp_path: Path, app: Flask, live_server: str) -> Iterator[AcmeConnection]:
    """The corporate IdP serving; in the live Gatehouse, organization acme (role "engineer") whose admin
    connects the IdP through the API."""
    def add_acme(session: Session) -> str:
        admin = users.create_user(session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, name="Acme Admin",
                                  bcrypt_rounds=4)
        admin.email_verified = True
        acme = organizations.create_organization(session, actor=Actor(user=admin), name="Acme", slug="acme")
        session.add(Role(organization_id=acme.id, name="engineer", description="", permissions=["members:read"]))
        # Verified beforehand (tests/api/test_organization_domains.py verifies over DNS): acme's connection
        # may assert only addresses in acme's verified domains.
        session.add(OrganizationDomain(organization_id=acme.id, domain="acme.example", verification_token=new_token(),
                                       verified_at=utcnow()))
        return str(acme.id)
    organization_id = _commit(app, add_acme)
    login = requests.post(f"{live_server}/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert login.status_code == 200, login.text
    admin = {"Authorization": f"Bearer {login.json()['data']['token']}"}
    connections = f"{live_server}/api/v1/organizations/{organization_id}/identity-providers"

    with second_gatehouse(tmp_path) as (issuer, corp_app):
        # The client id and secret exist only once the IdP knows our callback URL, which names the connection.
        created = requests.post(connections, headers=admin, json={
            "kind": "oidc", "name": "Acme corporate IdP", "issuer": issuer, "client_id": "pending",
            "client_secret": "pending", "attribute_mapping": {"groups": "org_roles"},
            "group_role_map": {"engineering": "engineer"}})
        assert created.status_code == 201, created.text
        connection = created.json()["data"]
        corp_client = _corporate_idp(corp_app, connection["callback_url"])
        patched = requests.patch(f"{connections}/{connection['id']}", headers=admin, json={
            "client_id": corp_client.client_id, "client_secret": corp_client.client_secret})
        assert patched.status_code == 200, patched.text
        yield AcmeConnection(issuer=issuer, organization_id=organization_id, provider_id=connection["id"])


def test_organization_parameter_signs_in_through_acmes_idp_with_the_mapped_role_and_acme_in_the_tokens(
        app: Flask, live_server: str, web_client: LiveClient, acme_connection: AcmeConnection):
    provider: Provider = discover(live_server)
    session = oauth_session(web_client)
    code_verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = session.create_authorization_url(provider["authorization_endpoint"], code_verifier=code_verifier,
                                                  nonce=nonce, organization="acme")
    http = requests.Session()

    # organization=acme, nobody signed in: straight to acme's connection, then to the corporate IdP.
    to_idp = authorize(http, url, email=PAT_EMAIL, password=PAT_PASSWORD)
    assert to_idp.startswith(acme_connection.issuer + "/oauth2/authorize?"), to_idp
    # Signed in there (its sign-in and consent pages), back at acme's connection's callback.
    back = authorize(http, to_idp, email=PAT_EMAIL, password=PAT_PASSWORD)
    assert back.startswith(f"{live_server}/federation/{acme_connection.provider_id}/callback?"), back
    # The pending request resumes: consent at the live Gatehouse, then the relying party's redirect URI.
    final = authorize(http, back, email=PAT_EMAIL, password=PAT_PASSWORD)
    query = {k: v[0] for k, v in parse_qs(urlsplit(final).query).items()}
    assert final.startswith(web_client.redirect_uri) and query["state"] == state, final

    token = session.fetch_token(provider["token_endpoint"], authorization_response=final,
                                code_verifier=code_verifier)
    expected = {"org_id": acme_connection.organization_id, "org_slug": "acme", "org_roles": ["engineer"]}
    id_claims = verify_id_token(provider, token["id_token"], client_id=web_client.client_id, nonce=nonce,
                                access_token=token["access_token"])
    access_claims = verify_access_token(provider, token["access_token"], client_id=web_client.client_id)
    for claims in (id_claims, access_claims):
        assert {name: claims.get(name) for name in expected} == expected
    assert id_claims["email"] == PAT_EMAIL and id_claims["idp"] == acme_connection.provider_id

    with Session(_engine(app)) as db:
        pat = db.scalar(select(User).where(User.email == PAT_EMAIL))
        role = db.scalar(select(Role.name).join(Membership, Membership.role_id == Role.id).join(Organization).where(
            Organization.slug == "acme", Membership.user_id == pat.id))
        added = db.scalar(select(AuditEvent).where(AuditEvent.action == "membership.added",
                                                   AuditEvent.target_id == str(pat.id)))
        assert (pat.email_verified, pat.password_hash, role) == (True, None, "engineer")
        assert added.details["via"] == "sso" and added.details["role"] == "engineer"
