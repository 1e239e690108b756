"""Single sign-on through an organization's own OpenID connection (kinds oidc and microsoft; saml's own
round trips are in test_saml_sign_in.py): just-in-time membership with the role from the IdP's groups, the
organization in the tokens of an SSO sign-in, and `organization=<slug>` sending the browser to the
organization's connection. Against a real HTTP server answering as an OpenID provider does (tests/upstream.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.models import Membership, OAuthClient, User
from app.services import authorization_context, identities, memberships
from app.services.actor import Actor
from app.stores.denylist import MemoryDenylist
from tests import factories
from tests.oauth.helpers import (
    Redirect,
    audit_events,
    authorization_params,
    is_consent_page,
    make_pkce,
    parse_page,
    query_of,
    verify_jwt,
)
from tests.oauth.test_federated_sign_in import TENANT, Upstream

PAT = "pat@acme.example"


@pytest.fixture
def acme(db_session):
    owner = factories.UserFactory(email="owner@acme.example")
    organization = factories.create_organization(db_session, owner=owner, slug="acme")
    factories.create_role(db_session, organization, "engineer", ["members:read", "clients:read", "audit:read"])
    # Its connections may assert only addresses in its verified domains (issue 14 §2).
    factories.verified_domain(db_session, organization, "acme.example")
    return organization


@pytest.fixture
def acme_sso(make_provider, upstream, acme, browser):
    """A browser's round trip through acme's oidc connection (default membership settings)."""
    return Upstream(browser, make_provider(organization_id=acme.id, settings={"issuer": upstream.issuer}), upstream)


def sso(browser, make_provider, upstream, organization, **settings: Any) -> Upstream:
    provider = make_provider(organization_id=organization.id, settings={"issuer": upstream.issuer} | settings)
    return Upstream(browser, provider, upstream)


def membership_role(db_session, organization, email: str) -> str | None:
    db_session.expire_all()
    user = db_session.scalar(select(User).where(User.email == email))
    membership = user and db_session.scalar(select(Membership).where(Membership.organization_id == organization.id,
                                                                     Membership.user_id == user.id))
    return membership.role.name if membership else None


# --- just-in-time membership -----------------------------------------------------------------------------

def test_first_sign_in_creates_a_verified_account_and_the_membership_with_the_default_role(acme_sso, acme,
                                                                                         db_session):
    response = acme_sso.sign_in(email=PAT, email_verified=False)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    user = db_session.scalar(select(User).where(User.email == PAT))
    # The organization vouches for its people's addresses, whatever the IdP says of them.
    assert user.email_verified is True and user.password_hash is None
    assert membership_role(db_session, acme, PAT) == "member"
    event = audit_events(db_session, "membership.added")[-1]
    assert event.organization_id == acme.id and event.target_id == str(user.id)
    assert event.details == {"role": "member", "via": "sso", "provider_id": str(acme_sso.provider.id)}


def test_a_platform_providers_sign_in_keeps_the_upstreams_verdict_on_the_email(browser, make_provider,
                                                                               upstream, db_session):
    Upstream(browser, make_provider(), upstream).sign_in(email=PAT, email_verified=False)
    assert db_session.scalar(select(User).where(User.email == PAT)).email_verified is False


def test_the_default_role_is_the_connections(browser, make_provider, upstream, acme, db_session):
    via = sso(browser, make_provider, upstream, acme, default_role="engineer")
    assert via.sign_in(email=PAT).status_code == 200
    assert membership_role(db_session, acme, PAT) == "engineer"


def test_the_highest_role_of_the_groups_claim_wins(browser, make_provider, upstream, acme, db_session):
    via = sso(browser, make_provider, upstream, acme,
              group_role_map={"staff": "member", "eng": "engineer", "ops": "admin", "gone": "ghost"})
    assert via.sign_in(email=PAT, groups=["staff", "eng", "ops", "gone", 7]).status_code == 200
    assert membership_role(db_session, acme, PAT) == "admin"


def test_groups_come_from_the_claim_the_attribute_mapping_names(browser, make_provider, upstream, acme,
                                                                db_session):
    via = sso(browser, make_provider, upstream, acme, attribute_mapping={"groups": "corp_teams"},
              group_role_map={"eng": "engineer"})
    assert via.sign_in(email=PAT, groups=["other"], corp_teams=["eng"]).status_code == 200
    assert membership_role(db_session, acme, PAT) == "engineer"


def test_every_sign_in_syncs_the_role_from_the_groups_and_audits_it(browser, make_provider, upstream, acme,
                                                                    db_session):
    via = sso(browser, make_provider, upstream, acme, group_role_map={"eng": "engineer", "ops": "admin"})
    via.sign_in(email=PAT, groups=["eng"])
    assert membership_role(db_session, acme, PAT) == "engineer"
    assert via.sign_in(email=PAT, groups=["ops"]).status_code == 200
    assert membership_role(db_session, acme, PAT) == "admin"
    event = audit_events(db_session, "membership.role_synced")[-1]
    assert event.organization_id == acme.id
    assert event.details == {"old_role": "engineer", "new_role": "admin", "provider_id": str(via.provider.id)}


def test_a_group_mapping_never_grants_owner_even_if_stored(browser, make_provider, upstream, acme,
                                                           db_session):
    via = sso(browser, make_provider, upstream, acme, group_role_map={"root": "owner"})
    assert via.sign_in(email=PAT, groups=["root"]).status_code == 200
    assert membership_role(db_session, acme, PAT) == "member"


def test_a_member_an_admin_removed_is_re_added_only_with_jit_membership(browser, make_provider, upstream,
                                                                        acme, db_session):
    via = sso(browser, make_provider, upstream, acme)
    via.sign_in(email=PAT)
    assert membership_role(db_session, acme, PAT) == "member"
    owner = db_session.scalar(select(User).where(User.email == "owner@acme.example"))
    pat = db_session.scalar(select(User).where(User.email == PAT))
    memberships.remove_member(db_session, actor=Actor(user=owner), access=factories.access_of(db_session, owner, acme),
                              user_id=pat.id, denylist=MemoryDenylist())
    via.provider.settings = via.provider.settings | {"jit_membership": False}
    db_session.commit()
    removed = audit_events(db_session, "membership.removed")[-1]
    assert (removed.target_id, removed.details["reason"]) == (str(pat.id), "removed")

    # The IdP still lists Pat; the sign-in works, the membership stays gone.
    assert via.sign_in(email=PAT).status_code == 200
    assert membership_role(db_session, acme, PAT) is None
    assert len(audit_events(db_session, "membership.added")) == 1

    via.provider.settings = via.provider.settings | {"jit_membership": True}
    db_session.commit()
    assert via.sign_in(email=PAT).status_code == 200
    assert membership_role(db_session, acme, PAT) == "member"
    readded = audit_events(db_session, "membership.added")
    assert len(readded) == 2 and readded[-1].details["via"] == "sso"


def test_linking_an_existing_account_with_its_password_also_gives_the_membership(browser, make_provider,
                                                                                 upstream, acme, db_session):
    via = sso(browser, make_provider, upstream, acme, group_role_map={"eng": "engineer"})
    factories.UserFactory(email=PAT)
    linking = via.sign_in(email=PAT, email_verified=False, groups=["eng", *(f"other-{n}" for n in range(200))])
    assert linking.status_code == 303 and linking.location == "/federation/link"
    with browser.http.session_transaction() as cookie:
        # Only the mapped groups wait in the session cookie (200 ids would overflow it).
        assert cookie["federation_link"]["groups"] == ["eng"]
    page = browser.http.get("/federation/link")
    form = parse_page(page).form
    done = browser.http.post("/federation/link", data={**form.fields, "password": factories.DEFAULT_PASSWORD})
    assert done.status_code == 200, done.get_data(as_text=True)[:500]
    assert membership_role(db_session, acme, PAT) == "engineer"


def test_microsoft_single_tenant_connection_maps_the_groups_claim(browser, make_provider, upstream, acme,
                                                                 db_session):
    upstream.server.serve_discovery(issuer=f"{upstream.url}/{TENANT}/v2.0",
                                    path=f"/{TENANT}/v2.0/.well-known/openid-configuration",
                                    code_challenge_methods_supported=["S256"])
    engineers = "5d1c3b59-2f6e-4f2d-9a57-2a1f4c0b9e11"  # Entra ID sends group object ids
    provider = make_provider(kind="microsoft", name="Entra", organization_id=acme.id, settings={
        "tenant": TENANT, "authority": upstream.url, "allowed_tenants": [], "allow_any_tenant": False,
        "group_role_map": {engineers: "engineer"}})
    response = Upstream(browser, provider, upstream).sign_in(
        callback={"iss": None}, iss=f"{upstream.url}/{TENANT}/v2.0", email=PAT, tid=TENANT, oid="oid-pat",
        groups=[engineers])
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert membership_role(db_session, acme, PAT) == "engineer"


# --- the organization in the tokens of an SSO sign-in ---------------------------------------------------

def authorize_through(via: Upstream, web_client, **extra: str) -> tuple[dict[str, str], Redirect]:
    """The relying party's request, sent to acme's connection by organization=acme; back, consent, code."""
    pkce = make_pkce()
    params = authorization_params(web_client, pkce=pkce, **extra)
    response = via.browser.authorize(params)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert response.location.startswith(f"/federation/{via.provider.id}/start?"), response.location
    assert query_of(response.location)["next"].startswith("/oauth2/authorize?")
    sent = query_of(via.browser.http.get(response.location).location)
    via.corp.issue(nonce=sent["nonce"], email=PAT, groups=["eng"])
    back = via.come_back(sent)
    assert back.status_code == 302 and back.location.startswith("/oauth2/authorize?"), back.location
    consent = via.browser.http.get(back.location)
    assert is_consent_page(consent)
    answer = via.browser.decide(consent, "allow")
    return params, Redirect(response=answer, location=answer.location, params=query_of(answer.location),
                            client=web_client, redirect_uri=params["redirect_uri"], pkce=pkce, nonce=params["nonce"])


@pytest.mark.parametrize("named", ["acme", None])
def test_tokens_of_an_sso_sign_in_carry_the_organization(browser, make_provider, upstream, acme, web_client,
                                                         exchange, client, db_session, named):
    """Named or not in the request: a relying party sees the organization without asking for it."""
    via = sso(browser, make_provider, upstream, acme, group_role_map={"eng": "engineer"})
    if named is None:
        via.sign_in(email=PAT, groups=["eng"])
        pkce = make_pkce()
        params = authorization_params(web_client, pkce=pkce)
        consent = browser.authorize(params)
        assert is_consent_page(consent)
        answer = browser.decide(consent, "allow")
        redirect = Redirect(response=answer, location=answer.location, params=query_of(answer.location),
                            client=web_client, redirect_uri=params["redirect_uri"], pkce=pkce, nonce=params["nonce"])
    else:
        _params, redirect = authorize_through(via, web_client, organization=named)
    tokens = exchange(redirect).get_json()
    expected = {"org_id": str(acme.id), "org_slug": "acme", "org_name": acme.name, "org_roles": ["engineer"]}
    for token in (tokens["id_token"], tokens["access_token"]):
        claims = verify_jwt(client, token).claims
        assert {name: claims.get(name) for name in expected} == expected


def test_a_password_sign_in_of_the_same_member_carries_no_organization(obtain_tokens, web_client, user, acme,
                                                                       db_session, client):
    factories.add_member(db_session, acme, user, "member")
    tokens = obtain_tokens(web_client)
    assert "org_id" not in verify_jwt(client, tokens["id_token"]).claims


# --- organization=<slug> goes to the organization's connection ----------------------------------------

def test_organization_parameter_goes_to_the_only_enabled_connection(acme_sso, web_client, make_provider,
                                                                    acme):
    make_provider(organization_id=acme.id, name="Old IdP", enabled=False)
    params = authorization_params(web_client, pkce=make_pkce(), organization="acme")
    response = acme_sso.browser.authorize(params)
    assert response.status_code == 302
    assert response.location.startswith(f"/federation/{acme_sso.provider.id}/start?")
    pending = query_of(query_of(response.location)["next"])
    assert pending["client_id"] == web_client.client_id and pending["organization"] == "acme"


def test_organization_parameter_by_id_goes_to_the_connection(acme_sso, web_client, acme):
    params = authorization_params(web_client, pkce=make_pkce(), organization=str(acme.id))
    response = acme_sso.browser.authorize(params)
    assert response.location.startswith(f"/federation/{acme_sso.provider.id}/start?")


@pytest.mark.parametrize("case", ["two_connections", "none", "unknown_organization"])
def test_organization_parameter_shows_the_sign_in_page_otherwise(browser, make_provider, acme, web_client,
                                                                 case):
    if case == "two_connections":
        make_provider(organization_id=acme.id, name="Okta")
        make_provider(organization_id=acme.id, name="Entra")
    response = browser.authorize(authorization_params(
        web_client, pkce=make_pkce(), organization="nobody" if case == "unknown_organization" else "acme"))
    assert response.status_code == 302 and response.location.startswith("/login?"), response.location


def test_organization_parameter_goes_to_the_connection_its_domain_enforces(acme_sso, web_client, make_provider,
                                                                          acme, db_session):
    """Issue 14 §2: organization=<slug> sends the person to the organization's enforced connection, even
    beside others."""
    make_provider(organization_id=acme.id, name="Entra")
    factories.verified_domain(db_session, acme, "acme.test", acme_sso.provider, enforce_sso=True)
    response = acme_sso.browser.authorize(authorization_params(web_client, pkce=make_pkce(), organization="acme"))
    assert response.status_code == 302
    assert response.location.startswith(f"/federation/{acme_sso.provider.id}/start?"), response.location


def test_organization_parameter_with_prompt_none_is_login_required(acme_sso, web_client):
    params = authorization_params(web_client, pkce=make_pkce(), organization="acme", prompt="none")
    response = acme_sso.browser.authorize(params)
    assert response.status_code == 302
    assert query_of(response.location)["error"] == "login_required"


def test_a_signed_in_person_is_not_sent_to_the_connection(signed_in, web_client, acme_sso, acme, db_session, user):
    factories.add_member(db_session, acme, user, "member")
    assert is_consent_page(signed_in.authorize(authorization_params(web_client, pkce=make_pkce(), organization="acme")))


# --- the services, directly ---------------------------------------------------------------------------

def test_organization_connection(db_session, make_provider, acme):
    assert identities.organization_connection(db_session, "acme") is None
    connection = make_provider(organization_id=acme.id)
    make_provider()  # platform-wide: not the organization's
    assert identities.organization_connection(db_session, "acme") == connection
    assert identities.organization_connection(db_session, None) is None
    second = make_provider(organization_id=acme.id, name="Second")
    assert identities.organization_connection(db_session, "acme") is None
    factories.verified_domain(db_session, acme, "acme.test", second, enforce_sso=True)
    assert identities.organization_connection(db_session, "acme") == second
    factories.verified_domain(db_session, acme, "acme.dev", connection, enforce_sso=True)
    assert identities.organization_connection(db_session, "acme") is None  # enforces two: the page decides


def test_an_idp_hint_goes_before_the_organization(db_session, make_provider, acme):
    """hinted_connection: `idp_hint` names the platform provider to use, and wins over `organization`; an
    unknown, disabled or organization-owned hint falls back to the organization's connection."""
    connection = make_provider(organization_id=acme.id)
    platform = make_provider(name="Platform")
    disabled = make_provider(name="Disabled", enabled=False)

    def hinted(idp_hint: str | None, organization: str | None):
        return identities.hinted_connection(db_session, idp_hint=idp_hint, organization=organization)

    assert hinted(str(platform.id), "acme") == platform
    assert hinted(None, "acme") == connection
    for fallen_back in (str(disabled.id), str(connection.id), "not-an-id"):
        assert hinted(fallen_back, "acme") == connection
    assert hinted(None, None) is None


def test_choose_organization_of_an_sso_session(db_session, make_provider, acme, web_client, user):
    connection = make_provider(organization_id=acme.id)
    client = db_session.scalar(select(OAuthClient).where(OAuthClient.client_id == web_client.client_id))
    outside = authorization_context.choose_organization(db_session, user=user, client=client, requested=None,
                                                        identity_provider_id=connection.id)
    assert outside.organization is None  # not a member: no organization context, no refusal
    factories.add_member(db_session, acme, user, "member")
    inside = authorization_context.choose_organization(db_session, user=user, client=client, requested=None,
                                                       identity_provider_id=connection.id)
    assert inside.organization.id == acme.id
