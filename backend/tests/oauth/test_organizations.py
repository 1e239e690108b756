"""Organizations in the protocol: the `organization` authorization parameter, organization-owned
clients, the organization picker, and the organization claims of codes, tokens, UserInfo and introspection."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import AuthorizationCode, Consent, Membership, RefreshToken
from app.oauth.endpoints import PICKED_ORGANIZATION
from app.services import organizations
from app.services.actor import Actor
from app.services.authorization_context import NO_ORGANIZATION, NOT_AVAILABLE, ORGANIZATION_CLAIMS
from tests import factories
from tests.factories import OAuthClientFactory, UserFactory, add_member, create_organization, session_token
from tests.oauth.helpers import (
    ISSUER,
    Redirect,
    Registered,
    authorization_params,
    is_consent_page,
    parse_page,
    query_of,
    verify_jwt,
    without_query,
)

SCOPES = ["openid", "profile", "email", "offline_access", "organization"]
OFFLINE = "openid offline_access"


def org_claims(claims: dict[str, Any]) -> dict[str, Any]:
    return {name: claims[name] for name in ORGANIZATION_CLAIMS if name in claims}


def expected_claims(organization, *roles: str) -> dict[str, Any]:
    claims = {"org_id": str(organization.id), "org_slug": organization.slug, "org_name": organization.name}
    return claims | ({"org_roles": list(roles)} if roles else {})


def count(db_session, model) -> int:
    return db_session.scalar(select(func.count()).select_from(model))


def error_redirect(response, registered: Registered) -> dict[str, str]:
    """An error sent back to the client's redirect URI (RFC 6749 §4.1.2.1), with state and iss (RFC 9207)."""
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert without_query(response.location) == registered.redirect_uri
    params = query_of(response.location)
    assert "code" not in params
    assert params["state"] == "state-xyz"
    assert params["iss"] == ISSUER
    return params


def assert_access_denied(response, registered: Registered, db_session, description: str = NOT_AVAILABLE) -> None:
    params = error_redirect(response, registered)
    assert params["error"] == "access_denied"
    assert params["error_description"] == description
    assert count(db_session, AuthorizationCode) == 0


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def acme(db_session, owner, user):
    """An organization `user` is a member of."""
    organization = create_organization(db_session, owner=owner, slug="acme", name="Acme Inc.")
    add_member(db_session, organization, user)
    return organization


@pytest.fixture
def globex(db_session, owner):
    """An organization `user` is not a member of."""
    return create_organization(db_session, owner=owner, slug="globex", name="Globex")


@pytest.fixture
def make_client(db_session):
    """A confidential client with the `organization` scope (unless given other scopes), made with the factory."""
    def make(**fields: Any) -> Registered:
        client = OAuthClientFactory(**{"scopes": SCOPES, **fields})
        return Registered(client_id=client.client_id, secret=OAuthClientFactory.DEFAULT_CLIENT_SECRET,
                          auth_method=client.token_endpoint_auth_method, redirect_uris=list(client.redirect_uris),
                          scopes=list(client.scopes))
    return make


@pytest.fixture
def platform_client(make_client) -> Registered:
    return make_client()


@pytest.fixture
def picker_client(make_client) -> Registered:
    """A platform client whose every authorization happens in an organization."""
    return make_client(organization_required=True)


def membership_of(db_session, organization, user) -> Membership:
    return db_session.scalar(select(Membership).where(Membership.organization_id == organization.id,
                                                      Membership.user_id == user.id))


def set_role(db_session, organization, user, role: str) -> None:
    factories.demote_meanwhile(db_session, organization, user, role)
    db_session.commit()


def remove_member(db_session, organization, user) -> None:
    db_session.delete(membership_of(db_session, organization, user))
    db_session.commit()


def pick(browser, picker_page, organization_id: object, **overrides: str):
    """Choose an organization on the picker page (its hidden fields, CSRF token included)."""
    form = parse_page(picker_page).form
    return browser.http.post(form.action, data={**form.fields, PICKED_ORGANIZATION: str(organization_id),
                                                **overrides})


def finish(browser, response, registered: Registered, pkce) -> Redirect:
    """Follow a 303 back to the authorization endpoint, allow consent, and return the code redirect."""
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    assert without_query(response.location) == "/oauth2/authorize"
    response = browser.http.get(response.location)
    if is_consent_page(response):
        response = browser.decide(response, "allow")
    assert response.status_code == 302 and not response.location.startswith("/"), response.location
    return Redirect(response=response, location=response.location, params=query_of(response.location),
                    client=registered, redirect_uri=registered.redirect_uri, pkce=pkce)


# --- the organization parameter --------------------------------------------------------------

@pytest.mark.parametrize("by", ["slug", "id"])
def test_member_names_an_organization_and_the_tokens_carry_it(authorize, exchange, platform_client, acme, client,
                                                              db_session, by):
    """`organization` by slug or id: the code records it, and both the access token (RFC 9068 §2.2, private
    claims) and the ID Token (OIDC Core §2, additional claims) carry org_id, org_slug, org_name, org_roles."""
    redirect = authorize(platform_client, organization=acme.slug if by == "slug" else str(acme.id))
    [code] = db_session.scalars(select(AuthorizationCode)).all()
    assert code.organization_id == acme.id

    tokens = exchange(redirect).get_json()
    assert org_claims(verify_jwt(client, tokens["access_token"]).claims) == expected_claims(acme, "member")
    assert org_claims(verify_jwt(client, tokens["id_token"]).claims) == expected_claims(acme, "member")


def test_without_an_organization_the_tokens_carry_none(obtain_tokens, platform_client, acme, client, db_session):
    """A platform client without `organization`: no organization context, no organization claims."""
    tokens = obtain_tokens(platform_client)
    assert db_session.scalar(select(AuthorizationCode)).organization_id is None
    assert org_claims(verify_jwt(client, tokens["access_token"]).claims) == {}
    assert org_claims(verify_jwt(client, tokens["id_token"]).claims) == {}


@pytest.mark.parametrize("organization", ["globex", "no-such-org", "00000000-0000-0000-0000-000000000000"],
                         ids=["not-a-member", "unknown-slug", "unknown-id"])
def test_an_organization_the_user_is_not_in_is_access_denied(signed_in, platform_client, globex, pkce, db_session,
                                                             organization):
    """RFC 6749 §4.1.2.1: access_denied to the (already validated) redirect URI, with one description whether
    or not the organization exists."""
    response = signed_in.authorize(authorization_params(platform_client, pkce=pkce(), organization=organization))
    assert_access_denied(response, platform_client, db_session)


def test_login_hint_and_email_domain_do_not_override_the_named_organization(browser, make_client, owner, acme,
                                                                            globex, pkce, exchange, client,
                                                                            db_session):
    """One organization per token: the named one, even when login_hint names someone at another
    organization's domain and the user's own email is at that domain."""
    ada = UserFactory(email="ada@globex.example")
    add_member(db_session, acme, ada, role="admin")
    add_member(db_session, globex, ada)
    registered = make_client()
    pair = pkce()
    params = authorization_params(registered, pkce=pair, organization="acme", login_hint="boss@globex.example")
    to_login = browser.authorize(params)
    assert query_of(to_login.location)["login_hint"] == "boss@globex.example"
    consent = browser.follow(browser.follow_login(to_login, ada))
    done = browser.decide(consent, "allow")
    redirect = Redirect(response=done, location=done.location, params=query_of(done.location), client=registered,
                        redirect_uri=registered.redirect_uri, pkce=pair)
    tokens = exchange(redirect).get_json()
    assert org_claims(verify_jwt(client, tokens["access_token"]).claims) == expected_claims(acme, "admin")


# --- organization-owned clients -----------------------------------------------------------

def test_an_owned_client_implies_its_organization(make_client, acme, obtain_tokens, client, db_session):
    tokens = obtain_tokens(make_client(organization_id=acme.id))
    assert db_session.scalar(select(AuthorizationCode)).organization_id == acme.id
    assert org_claims(verify_jwt(client, tokens["access_token"]).claims) == expected_claims(acme, "member")


def test_an_owned_client_refuses_another_organization(signed_in, make_client, acme, globex, user, pkce, db_session):
    """Even one the user belongs to: the client serves only its own organization."""
    add_member(db_session, globex, user)
    registered = make_client(organization_id=acme.id)
    response = signed_in.authorize(authorization_params(registered, pkce=pkce(), organization="globex"))
    assert_access_denied(response, registered, db_session)


def test_an_owned_client_refuses_a_non_member(signed_in, make_client, globex, pkce, db_session):
    registered = make_client(organization_id=globex.id)
    response = signed_in.authorize(authorization_params(registered, pkce=pkce()))
    assert_access_denied(response, registered, db_session)


# --- the organization picker ---------------------------------------------------------------

def test_required_organization_with_one_membership_needs_no_picker(authorize, picker_client, acme, db_session):
    authorize(picker_client)
    assert db_session.scalar(select(AuthorizationCode)).organization_id == acme.id


def test_required_organization_without_membership_is_access_denied(signed_in, picker_client, pkce, db_session):
    response = signed_in.authorize(authorization_params(picker_client, pkce=pkce()))
    assert_access_denied(response, picker_client, db_session, description=NO_ORGANIZATION)


def test_picker_lists_the_users_organizations_in_an_accessible_csrf_protected_form(
        signed_in, picker_client, acme, globex, user, pkce, db_session):
    """Several memberships: a server-rendered page (no JavaScript) with a labelled radio per organization."""
    add_member(db_session, globex, user, role="admin")
    response = signed_in.authorize(authorization_params(picker_client, pkce=pkce()))
    assert response.status_code == 200
    page = parse_page(response)
    assert "Choose an organization" in page.text
    assert "Acme Inc. (member)" in page.text and "Globex (admin)" in page.text
    form = page.form
    assert form.method == "post"
    assert form.fields["csrf_token"]
    radios = [i for i in form.inputs if i.get("type") == "radio"]
    assert {r["value"] for r in radios} == {str(acme.id), str(globex.id)}
    assert all(r["name"] == PICKED_ORGANIZATION and r["id"] in page.labels_for for r in radios)
    assert ("decision", "deny") in form.buttons
    assert count(db_session, AuthorizationCode) == 0


def test_picking_an_organization_continues_the_same_request(signed_in, picker_client, acme, globex, user, pkce,
                                                            exchange, client, db_session):
    add_member(db_session, globex, user, role="admin")
    pair = pkce()
    params = authorization_params(picker_client, pkce=pair)
    picked = pick(signed_in, signed_in.authorize(params), globex.id)
    assert query_of(picked.location)["organization"] == str(globex.id)
    assert query_of(picked.location)["nonce"] == params["nonce"]
    redirect = finish(signed_in, picked, picker_client, pair)
    assert redirect.params["state"] == "state-xyz"
    assert db_session.scalar(select(AuthorizationCode)).organization_id == globex.id
    tokens = exchange(redirect).get_json()
    assert org_claims(verify_jwt(client, tokens["id_token"]).claims) == expected_claims(globex, "admin")


def test_a_posted_picker_answer_never_overrides_the_named_organization(signed_in, picker_client, acme, globex,
                                                                      user, pkce, db_session):
    """The request's organization=acme wins over a chosen_organization=globex smuggled into the consent POST."""
    add_member(db_session, globex, user, role="admin")
    consent = signed_in.authorize(authorization_params(picker_client, pkce=pkce(), organization="acme"))
    assert is_consent_page(consent)
    form = parse_page(consent).form
    response = signed_in.http.post(form.action, data={**form.fields, "decision": "allow",
                                                      PICKED_ORGANIZATION: str(globex.id)})
    assert response.status_code == 302 and "code=" in response.location
    assert db_session.scalar(select(AuthorizationCode)).organization_id == acme.id


def test_picked_organization_is_checked_again(signed_in, picker_client, acme, globex, user, pkce, db_session):
    """The form is not trusted: a posted organization the user is not in is access_denied."""
    add_member(db_session, globex, user)
    page = signed_in.authorize(authorization_params(picker_client, pkce=pkce()))
    remove_member(db_session, globex, user)
    assert_access_denied(pick(signed_in, page, globex.id), picker_client, db_session)


def test_picked_organization_the_user_never_belonged_to_is_access_denied(signed_in, picker_client, acme, globex,
                                                                        owner, user, pkce, db_session):
    add_member(db_session, create_organization(db_session, owner=owner, slug="initech"), user)
    page = signed_in.authorize(authorization_params(picker_client, pkce=pkce()))
    assert_access_denied(pick(signed_in, page, globex.id), picker_client, db_session)


@pytest.mark.parametrize("csrf_token", ["", "forged-token"], ids=["missing", "forged"])
def test_picker_post_without_a_valid_csrf_token_is_rejected(signed_in, picker_client, acme, globex, user, pkce,
                                                            db_session, csrf_token):
    add_member(db_session, globex, user)
    page = signed_in.authorize(authorization_params(picker_client, pkce=pkce()))
    response = pick(signed_in, page, globex.id, csrf_token=csrf_token)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert count(db_session, AuthorizationCode) == 0


def test_cancel_on_the_picker_is_access_denied(signed_in, picker_client, acme, globex, user, pkce, db_session):
    """RFC 6749 §4.1.2.1: the user declined; the client gets access_denied."""
    add_member(db_session, globex, user)
    page = signed_in.authorize(authorization_params(picker_client, pkce=pkce()))
    form = parse_page(page).form
    response = signed_in.http.post(form.action, data={**form.fields, "decision": "deny"})
    params = error_redirect(response, picker_client)
    assert params["error"] == "access_denied"
    assert count(db_session, AuthorizationCode) == 0


def test_prompt_none_when_a_choice_is_needed_is_interaction_required(signed_in, picker_client, acme, globex, user,
                                                                     pkce, db_session):
    """OIDC Core §3.1.2.6: the user must interact (pick an organization), and prompt=none forbids it."""
    add_member(db_session, globex, user)
    response = signed_in.authorize(authorization_params(picker_client, pkce=pkce(), prompt="none"))
    params = error_redirect(response, picker_client)
    assert params["error"] == "interaction_required"
    assert count(db_session, AuthorizationCode) == 0


def test_prompt_login_then_picker_signs_in_only_once(signed_in, picker_client, acme, globex, user, pkce,
                                                     db_session):
    """OIDC Core §3.1.2.1 (prompt=login): the new sign-in counts for the request after the pick too."""
    add_member(db_session, globex, user)
    pair = pkce()
    to_login = signed_in.authorize(authorization_params(picker_client, pkce=pair, prompt="login"))
    picker = signed_in.follow(signed_in.follow_login(to_login, user))
    assert picker.status_code == 200 and "Choose an organization" in parse_page(picker).text
    redirect = finish(signed_in, pick(signed_in, picker, acme.id), picker_client, pair)
    assert "code" in redirect.params


# --- tokens ---------------------------------------------------------------------------------

def test_code_of_a_user_who_left_the_organization_is_invalid_grant(authorize, exchange, platform_client, acme, user,
                                                                   db_session):
    """RFC 6749 §5.2: the grant is no longer valid once its user left its organization."""
    redirect = authorize(platform_client, organization="acme")
    remove_member(db_session, acme, user)
    response = exchange(redirect)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_refresh_keeps_the_organization_and_reads_the_current_role(obtain_tokens, token_request, platform_client,
                                                                   acme, user, client, db_session):
    tokens = obtain_tokens(platform_client, scope=OFFLINE, organization="acme")
    set_role(db_session, acme, user, "admin")
    for _ in range(2):
        response = token_request(platform_client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
        assert response.status_code == 200, response.get_json()
        tokens = response.get_json()
        assert org_claims(verify_jwt(client, tokens["access_token"]).claims) == expected_claims(acme, "admin")
    rows = db_session.scalars(select(RefreshToken)).all()
    assert len(rows) == 3
    assert {row.organization_id for row in rows} == {acme.id}


def test_refresh_after_leaving_the_organization_is_invalid_grant(obtain_tokens, token_request, platform_client, acme,
                                                                 user, db_session):
    """RFC 6749 §5.2: invalid_grant; the refresh token issues nothing more."""
    tokens = obtain_tokens(platform_client, scope=OFFLINE, organization="acme")
    remove_member(db_session, acme, user)
    response = token_request(platform_client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert "access_token" not in response.get_json()


def test_client_credentials_of_an_owned_client_carry_the_organization(token_request, acme, client, db_session):
    """RFC 6749 §4.4 and RFC 9068 §2.2: the organization of the client, and no org_roles (there is no user)."""
    machine = OAuthClientFactory(organization_id=acme.id, grant_types=["client_credentials"], redirect_uris=[],
                                 response_types=[], scopes=["invoices:read"])
    registered = Registered(client_id=machine.client_id, secret=OAuthClientFactory.DEFAULT_CLIENT_SECRET,
                            auth_method="client_secret_basic", redirect_uris=[], scopes=["invoices:read"])
    response = token_request(registered, grant_type="client_credentials")
    assert response.status_code == 200
    assert org_claims(verify_jwt(client, response.get_json()["access_token"]).claims) == expected_claims(acme)


def test_client_credentials_of_a_platform_client_carry_no_organization(token_request, machine_client, client):
    response = token_request(machine_client, grant_type="client_credentials")
    assert org_claims(verify_jwt(client, response.get_json()["access_token"]).claims) == {}


# --- UserInfo and introspection ----------------------------------------------------------------

def test_userinfo_returns_the_current_membership_under_the_organization_scope(obtain_tokens, platform_client, acme,
                                                                              user, bearer, db_session):
    """OIDC Core §5.3.2: UserInfo may return further claims; read now, so a role change shows at once."""
    tokens = obtain_tokens(platform_client, scope="openid organization", organization="acme")
    set_role(db_session, acme, user, "admin")
    response = bearer("/oauth2/userinfo", tokens["access_token"])
    assert response.status_code == 200
    assert response.get_json() == {"sub": str(user.id), **expected_claims(acme, "admin")}


def test_userinfo_without_the_organization_scope_has_no_organization_claims(obtain_tokens, platform_client, acme,
                                                                            user, bearer):
    tokens = obtain_tokens(platform_client, scope="openid", organization="acme")
    response = bearer("/oauth2/userinfo", tokens["access_token"])
    assert response.status_code == 200
    assert response.get_json() == {"sub": str(user.id)}


def test_userinfo_omits_the_organization_of_a_former_member(obtain_tokens, platform_client, acme, user, bearer,
                                                             db_session):
    tokens = obtain_tokens(platform_client, scope="openid organization", organization="acme")
    remove_member(db_session, acme, user)
    response = bearer("/oauth2/userinfo", tokens["access_token"])
    assert response.status_code == 200
    assert response.get_json() == {"sub": str(user.id)}


def test_introspection_returns_the_organization_claims(obtain_tokens, platform_client, acme, introspect):
    """RFC 7662 §2.2: the response may carry further members; an organization's token says which one."""
    tokens = obtain_tokens(platform_client, scope="openid", organization="acme")
    body = introspect(platform_client, tokens["access_token"])
    assert body["active"] is True
    assert org_claims(body) == expected_claims(acme, "member")


def test_tokens_of_a_deleted_organization_are_dead(obtain_tokens, platform_client, acme, owner, introspect, bearer,
                                                   app, db_session):
    """After the organization is deleted its access tokens are inactive (RFC 7662 §2.2) and UserInfo
    refuses them (RFC 6750 §3.1 invalid_token)."""
    tokens = obtain_tokens(platform_client, scope="openid organization", organization="acme")
    organizations.delete_organization(db_session, actor=Actor(user=owner),
                                      access=factories.access_of(db_session, owner, acme),
                                      denylist=app.extensions["gatehouse.stores"].denylist, access_token_lifetime=600)
    db_session.commit()
    assert introspect(platform_client, tokens["access_token"]) == {"active": False}
    response = bearer("/oauth2/userinfo", tokens["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


# --- consent per organization ----------------------------------------------------------------

ADMIN_SCOPE = "openid org:admin"


@pytest.fixture
def admin_client(make_client) -> Registered:
    """A third-party platform client that may ask for org:admin (so it shows the consent page)."""
    return make_client(name="Payroll", scopes=SCOPES + ["org:admin"])


def consented_organizations(db_session) -> set:
    return set(db_session.scalars(select(Consent.organization_id)))


def test_consent_in_one_organization_is_not_consent_in_another(signed_in, authorize, admin_client, acme, globex,
                                                               user, pkce, db_session):
    """OIDC Core §3.1.2.4: consent covers what the user saw, here org:admin in acme. With prompt=none in
    globex (where the user is an owner) there is no consent to rely on: consent_required (§3.1.2.6), no code."""
    add_member(db_session, globex, user, role="owner")
    authorize(admin_client, scope=ADMIN_SCOPE, organization="acme")
    again_in_acme = signed_in.authorize(authorization_params(admin_client, pkce=pkce(), scope=ADMIN_SCOPE,
                                                             organization="acme", prompt="none"))
    assert "code" in query_of(again_in_acme.location)

    response = signed_in.authorize(authorization_params(admin_client, pkce=pkce(), scope=ADMIN_SCOPE,
                                                        organization="globex", prompt="none"))

    assert error_redirect(response, admin_client)["error"] == "consent_required"
    assert {code.organization_id for code in db_session.scalars(select(AuthorizationCode))} == {acme.id}
    assert consented_organizations(db_session) == {acme.id}


@pytest.mark.parametrize("given_in, asked_in", [(None, "acme"), ("acme", None)],
                         ids=["none-then-organization", "organization-then-none"])
def test_consent_with_and_without_an_organization_do_not_count_for_each_other(signed_in, authorize, admin_client,
                                                                               acme, pkce, db_session, given_in,
                                                                               asked_in):
    authorize(admin_client, scope=ADMIN_SCOPE, organization=given_in)

    response = signed_in.authorize(authorization_params(admin_client, pkce=pkce(), scope=ADMIN_SCOPE,
                                                        organization=asked_in))

    assert is_consent_page(response)
    signed_in.decide(response, "allow")
    assert consented_organizations(db_session) == {None, acme.id}


def test_consent_page_names_the_organization_and_describes_its_scopes(signed_in, admin_client, acme, pkce):
    """OIDC Core §3.1.2.4: the user is told what they authorize, and where."""
    response = signed_in.authorize(authorization_params(admin_client, pkce=pkce(),
                                                        scope="openid organization org:admin", organization="acme"))

    text = parse_page(response).text
    assert "Payroll wants to access your account in Acme Inc." in text
    assert "See which organization you are signing in to and your role in it" in text
    assert "Manage Acme Inc. for you: its members, roles, applications and settings" in text
    assert "org:admin" not in text


def test_deleting_the_organization_removes_its_consents(authorize, admin_client, acme, owner, api, db_session):
    authorize(admin_client, scope=ADMIN_SCOPE, organization="acme")
    authorize(admin_client, scope=ADMIN_SCOPE)
    assert consented_organizations(db_session) == {None, acme.id}

    assert api.delete(f"/api/v1/organizations/{acme.id}", token=session_token(owner)).status == 200

    assert consented_organizations(db_session) == {None}


# --- discovery ----------------------------------------------------------------------------

def test_discovery_advertises_the_organization_scope_and_claims(client):
    """OIDC Discovery 1.0 §3: scopes_supported and claims_supported list what is implemented."""
    metadata = client.get("/.well-known/openid-configuration").get_json()
    assert "organization" in metadata["scopes_supported"]
    assert set(ORGANIZATION_CLAIMS) <= set(metadata["claims_supported"])
    assert "organization" in client.get("/.well-known/oauth-authorization-server").get_json()["scopes_supported"]


def test_an_org_admin_token_from_the_token_endpoint_works_on_its_organization_only(
        obtain_tokens, make_client, acme, globex, user, bearer, db_session):
    """The management API's access-token credential, end to end: the code flow with organization=acme
    and scope org:admin yields a token that acts as the user's membership in acme, and in no other
    organization (403 where the user is a member too, 404 where not)."""
    set_role(db_session, acme, user, "admin")
    org_admin_client = make_client(scopes=[*SCOPES, "org:admin"])
    token = obtain_tokens(org_admin_client, scope="openid org:admin", organization="acme")["access_token"]

    in_acme = bearer(f"/api/v1/organizations/{acme.id}/members", token)
    assert in_acme.status_code == 200
    assert {m["email"] for m in in_acme.get_json()["data"]} == {user.email, acme_owner_email(db_session, acme)}
    assert bearer(f"/api/v1/organizations/{globex.id}", token).status_code == 404
    add_member(db_session, globex, user, role="owner")
    refused = bearer(f"/api/v1/organizations/{globex.id}", token)
    assert refused.status_code == 403 and refused.get_json()["error"]["type"] == "PERMISSION_DENIED"
    # Without org:admin the same flow's token is no API credential at all.
    plain = obtain_tokens(org_admin_client, scope="openid", organization="acme")["access_token"]
    assert bearer(f"/api/v1/organizations/{acme.id}", plain).status_code == 401


def acme_owner_email(db_session, organization) -> str:
    owner_role = organizations.builtin_role(db_session, organization.id, "owner")
    return db_session.scalar(select(Membership).where(Membership.role_id == owner_role.id)).user.email
