"""Organizations with a real OAuth client library against the live server.

Authlib's OAuth2Session sends `organization=acme` with an ordinary authorization request
(the library passes unknown parameters through), and the tokens it gets back are checked
as a relying party and a resource server would: against the published keys, with joserfc.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

import pytest
import requests

from app.models import User
from app.services import organizations
from app.services.actor import Actor
from tests.factories import OAuthClientFactory
from tests.live import flows
from tests.live.conftest import MACHINE_SCOPES, LiveClient, LiveUser, _commit
from tests.live.relying_party import discover, oauth_session, verify_access_token, verify_id_token


@dataclass(frozen=True)
class LiveOrganization:
    id: str
    slug: str
    name: str

    def claims(self, *roles: str) -> dict:
        return {"org_id": self.id, "org_slug": self.slug, "org_name": self.name} | (
            {"org_roles": list(roles)} if roles else {})


def org_claims(claims: dict) -> dict:
    return {name: value for name, value in claims.items() if name.startswith("org_")}


@pytest.fixture
def acme(app, live_user: LiveUser) -> LiveOrganization:
    """An organization the live user owns."""
    def build(session) -> LiveOrganization:
        owner = session.get(User, uuid.UUID(live_user.id))
        organization = organizations.create_organization(session, actor=Actor(user=owner), name="Acme Inc.",
                                                         slug="acme")
        return LiveOrganization(id=str(organization.id), slug=organization.slug, name=organization.name)
    return _commit(app, build)


@pytest.fixture
def acme_machine_client(app, acme: LiveOrganization) -> LiveClient:
    """A client-credentials client owned by the organization."""
    def build(session) -> LiveClient:
        client = OAuthClientFactory.build(organization_id=uuid.UUID(acme.id), grant_types=["client_credentials"],
                                          redirect_uris=[], response_types=[], scopes=MACHINE_SCOPES)
        session.add(client)
        return LiveClient(client_id=client.client_id, client_secret=OAuthClientFactory.DEFAULT_CLIENT_SECRET,
                          redirect_uri=None, scopes=tuple(MACHINE_SCOPES))
    return _commit(app, build)


def test_a_members_access_and_id_tokens_carry_the_organization(live_server: str, web_client: LiveClient,
                                                               live_user: LiveUser, acme: LiveOrganization):
    """The `organization` request parameter through a real client library: the ID Token (OIDC Core §3.1.3.7
    validation) and the JWT access token (RFC 9068 §4) carry org_id, org_slug, org_name and org_roles, and a
    refresh (RFC 6749 §6) keeps them."""
    provider = discover(live_server)
    session = oauth_session(web_client)
    code_verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, _ = session.create_authorization_url(provider["authorization_endpoint"], code_verifier=code_verifier,
                                              nonce=nonce, organization=acme.slug)
    with requests.Session() as browser:
        callback_url = flows.authorize(browser, url, email=live_user.email, password=live_user.password)
    token = session.fetch_token(provider["token_endpoint"], authorization_response=callback_url,
                                code_verifier=code_verifier)

    id_claims = verify_id_token(provider, token["id_token"], client_id=web_client.client_id, nonce=nonce,
                                access_token=token["access_token"])
    assert org_claims(id_claims) == acme.claims("owner")
    access = verify_access_token(provider, token["access_token"], client_id=web_client.client_id)
    assert access["sub"] == live_user.id
    assert org_claims(access) == acme.claims("owner")

    refreshed = session.refresh_token(provider["token_endpoint"])
    assert org_claims(verify_access_token(provider, refreshed["access_token"], client_id=web_client.client_id)) \
        == acme.claims("owner")


def test_an_organizations_machine_client_gets_its_organization(live_server: str, acme_machine_client: LiveClient,
                                                               acme: LiveOrganization):
    """RFC 6749 §4.4 through the library: the client-credentials token of an organization's own client
    carries the organization (RFC 9068 §2.2: sub is the client; no user, so no org_roles)."""
    provider = discover(live_server)
    token = oauth_session(acme_machine_client).fetch_token(provider["token_endpoint"],
                                                           grant_type="client_credentials")
    claims = verify_access_token(provider, token["access_token"], client_id=acme_machine_client.client_id)
    assert claims["sub"] == acme_machine_client.client_id
    assert org_claims(claims) == acme.claims()
