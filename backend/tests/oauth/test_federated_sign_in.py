"""Signing in through an upstream OpenID provider (/federation/<id>/start and /callback) and what it does to
accounts, against a real HTTP server answering as an OpenID provider does (tests/upstream.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import func, select

from app.models import ExternalIdentity, FederationState, IdentityProvider, User, UserSession
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.oauth.helpers import (
    Browser,
    Redirect,
    audit_events,
    authorization_params,
    is_consent_page,
    make_pkce,
    parse_page,
    query_of,
    store_under_a_dropped_key,
    verify_jwt,
    without_query,
)
from tests.upstream import OpenIDProviderStandIn


@pytest.fixture
def provider(make_provider) -> IdentityProvider:
    return make_provider()


class Upstream:
    """A browser's round trip through the upstream: start, the upstream's answer, the callback."""

    def __init__(self, browser: Browser, provider: IdentityProvider, corp: OpenIDProviderStandIn) -> None:
        self.browser, self.provider, self.corp = browser, provider, corp

    def start(self, **query: str) -> dict[str, str]:
        response = self.browser.http.get(f"/federation/{self.provider.id}/start", query_string=query)
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        assert without_query(response.location) == f"{self.corp.url}/authorize"
        return query_of(response.location)

    def come_back(self, sent: dict[str, str], **params: str | None):
        values = {"code": "corp-code", "state": sent["state"], "iss": self.corp.issuer} | params
        return self.browser.http.get(f"/federation/{self.provider.id}/callback",
                                     query_string={k: v for k, v in values.items() if v is not None})

    def sign_in(self, *, start: dict[str, str] | None = None, callback: dict[str, str | None] | None = None,
                **claims: Any):
        sent = self.start(**(start or {}))
        self.corp.issue(nonce=sent["nonce"], **claims)
        return self.come_back(sent, **(callback or {}))


@pytest.fixture
def via(browser, provider, upstream) -> Upstream:
    return Upstream(browser, provider, upstream)


def count(db_session, model) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(model))


def assert_refused(response, db_session, *, users_before: int, message: str) -> None:
    """Back on the sign-in page with a plain message; no account, identity or session was made."""
    assert response.status_code == 400
    assert message in parse_page(response).text
    assert count(db_session, User) == users_before
    assert count(db_session, ExternalIdentity) == 0
    assert count(db_session, UserSession) == 0


# --- the request to the upstream ---------------------------------------------------------------------

def test_start_sends_state_nonce_pkce_and_exact_redirect_uri(via, provider, settings, db_session):
    sent = via.start()
    assert sent["client_id"] == OpenIDProviderStandIn.CLIENT_ID
    assert sent["redirect_uri"] == f"{settings.ISSUER}/federation/{provider.id}/callback"
    assert sent["response_type"] == "code"
    assert set(sent["scope"].split()) == {"openid", "email", "profile"}
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert len(sent["state"]) >= 32 and len(sent["nonce"]) >= 32
    assert count(db_session, FederationState) == 1


def test_start_without_pkce_support_sends_no_challenge(browser, make_provider, db_session):
    corp = OpenIDProviderStandIn(code_challenge_methods_supported=["plain"])
    try:
        sent = Upstream(browser, make_provider(settings={"issuer": corp.issuer}), corp).start()
    finally:
        corp.close()
    assert "code_challenge" not in sent


def test_start_of_a_disabled_provider_shows_the_sign_in_page(browser, make_provider):
    provider = make_provider(enabled=False)
    response = browser.http.get(f"/federation/{provider.id}/start")
    assert response.status_code == 404
    assert "not available" in parse_page(response).text


# --- a first sign-in: just in time -------------------------------------------------------------------

def test_callback_creates_an_account_just_in_time(via, provider, upstream, db_session):
    response = via.sign_in(email="New.Person@corp.example")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    user = db_session.scalar(select(User).where(User.email == "new.person@corp.example"))
    assert user.password_hash is None and user.email_verified is True and user.name == "Pat Corp"
    linked = db_session.scalar(select(ExternalIdentity))
    assert (linked.user_id, linked.provider_id, linked.subject) == (user.id, provider.id, "corp-user-1")
    session = db_session.scalar(select(UserSession))
    assert session.amr == ["fed"] and session.identity_provider_id == provider.id
    assert [e.action for e in audit_events(db_session, "federation.signup")] == ["federation.signup"]
    assert len(audit_events(db_session, "federation.login")) == 1
    # The login history (GET /api/v1/users/me/login-history) reads the method from the sign-in event.
    [sign_in] = audit_events(db_session, "auth.login")
    assert (sign_in.actor_user_id, sign_in.details) == (user.id, {"method": "federation",
                                                                   "provider_id": str(provider.id)})
    token_request = [r for r in upstream.requests_to("/token")][0]
    assert b"code_verifier=" in token_request.body and b"code=corp-code" in token_request.body
    assert token_request.headers["Authorization"].startswith("Basic ")


def test_callback_keeps_an_unproved_email_unverified(via, db_session):
    via.sign_in(email_verified=False)
    assert db_session.scalar(select(User)).email_verified is False


def test_callback_without_signup_refuses_and_creates_nothing(via, make_provider, browser, upstream, db_session):
    via.provider = make_provider(allow_signup=False)
    response = via.sign_in()
    assert_refused(response, db_session, users_before=0, message="may not create one")
    assert audit_events(db_session, "federation.failed")[0].details == {"reason": "signup_not_allowed"}


def test_second_sign_in_finds_the_person_by_subject_not_email(via, db_session):
    via.sign_in(email="first@corp.example")
    response = via.sign_in(email="renamed@corp.example")
    assert response.status_code == 200
    assert count(db_session, User) == 1
    assert db_session.scalar(select(User)).email == "first@corp.example"


# --- refused answers ---------------------------------------------------------------------------------

def test_callback_refuses_a_tampered_signature(via, upstream, db_session):
    sent = via.start()
    token = upstream.id_token(upstream.claims(nonce=sent["nonce"]))
    header, payload, signature = token.split(".")
    upstream.issue(nonce=sent["nonce"], token=f"{header}.{payload}.{signature[:-4]}AAAA")
    assert_refused(via.come_back(sent), db_session, users_before=0, message="invalid signature")


def test_callback_refuses_a_token_signed_by_another_key(via, upstream, db_session):
    sent = via.start()
    stranger = RSAKey.generate_key(2048, parameters={"kid": "corp-1"})
    upstream.issue(nonce=sent["nonce"], token=upstream.id_token(upstream.claims(nonce=sent["nonce"]), key=stranger))
    assert_refused(via.come_back(sent), db_session, users_before=0, message="invalid signature")


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_callback_refuses_a_disallowed_algorithm(via, upstream, db_session, alg):
    sent = via.start()
    token = upstream.id_token(upstream.claims(nonce=sent["nonce"]))
    header = "eyJhbGciOiJub25lIn0" if alg == "none" else "eyJhbGciOiJIUzI1NiIsImtpZCI6ImNvcnAtMSJ9"
    upstream.issue(nonce=sent["nonce"], token=".".join([header, token.split(".")[1], token.split(".")[2]]))
    assert_refused(via.come_back(sent), db_session, users_before=0, message="algorithm we do not accept")


@pytest.mark.parametrize(("claims", "message"), [
    (lambda now: {"aud": "someone-else"}, "issued to another application"),
    (lambda now: {"aud": [OpenIDProviderStandIn.CLIENT_ID, "other"]}, "issued to another application"),  # no azp
    (lambda now: {"aud": [OpenIDProviderStandIn.CLIENT_ID, "other"], "azp": "other"},
     "issued to another application"),
    (lambda now: {"iss": "https://evil.example"}, "issued by another identity provider"),
    (lambda now: {"exp": now - 121, "iat": now - 600}, "has expired"),
    (lambda now: {"iat": now + 300}, "issued in the future"),
    (lambda now: {"exp": None}, "lacks its issue or expiry time"),
], ids=["aud", "several-aud-no-azp", "azp", "iss", "expired", "iat-future", "no-exp"])
def test_callback_refuses_an_id_token_with_wrong_claims(via, db_session, claims, message):
    """OIDC Core §3.1.3.7 steps 2-5, 9-10 (with at most two minutes of clock skew)."""
    response = via.sign_in(**claims(int(time.time())))
    assert_refused(response, db_session, users_before=0, message=message)


def test_callback_accepts_several_audiences_with_our_azp(via, db_session):
    response = via.sign_in(aud=[OpenIDProviderStandIn.CLIENT_ID, "other"], azp=OpenIDProviderStandIn.CLIENT_ID)
    assert response.status_code == 200


def test_callback_accepts_expiry_within_the_skew(via, db_session):
    response = via.sign_in(exp=int(time.time()) - 60)
    assert response.status_code == 200


def test_callback_refuses_a_wrong_nonce(via, upstream, db_session):
    sent = via.start()
    upstream.issue(nonce="another-sign-in's-nonce")
    assert_refused(via.come_back(sent), db_session, users_before=0, message="does not belong to this sign-in")


def test_callback_refuses_a_userinfo_subject_mismatch(via, upstream, db_session):
    sent = via.start()
    upstream.issue(nonce=sent["nonce"], userinfo_subject="corp-user-2")
    assert_refused(via.come_back(sent), db_session, users_before=0, message="someone else")


def test_callback_refuses_a_replayed_state(via, upstream, db_session):
    sent = via.start()
    upstream.issue(nonce=sent["nonce"])
    assert via.come_back(sent).status_code == 200
    users_before = count(db_session, User)
    sessions_before = count(db_session, UserSession)
    replay = via.come_back(sent)
    assert replay.status_code == 400 and "try again" in parse_page(replay).text
    assert (count(db_session, User), count(db_session, UserSession)) == (users_before, sessions_before)


def test_callback_refuses_a_state_from_another_browser(via, new_browser, provider, upstream, db_session):
    sent = via.start()
    upstream.issue(nonce=sent["nonce"])
    response = Upstream(new_browser(), provider, upstream).come_back(sent)
    assert_refused(response, db_session, users_before=0, message="not started in this browser")


def test_callback_refuses_an_expired_state(via, upstream, db_session):
    sent = via.start()
    db_session.execute(FederationState.__table__.update().values(expires_at=FederationState.created_at))
    upstream.issue(nonce=sent["nonce"])
    assert_refused(via.come_back(sent), db_session, users_before=0, message="took too long")


def test_start_removes_states_that_expired(via, db_session):
    via.start()
    db_session.execute(FederationState.__table__.update().values(expires_at=FederationState.created_at))
    via.start()
    assert count(db_session, FederationState) == 1


def test_callback_refuses_a_mismatched_iss_parameter(via, db_session):
    """RFC 9207 §2.4: the iss parameter must be the provider's issuer."""
    response = via.sign_in(callback={"iss": "https://mix-up.example"})
    assert_refused(response, db_session, users_before=0, message="did not come from the identity provider")


def test_callback_refuses_a_missing_iss_parameter_when_advertised(via, db_session):
    response = via.sign_in(callback={"iss": None})
    assert_refused(response, db_session, users_before=0, message="did not come from the identity provider")


def test_callback_with_access_denied_returns_to_the_sign_in_page(via, db_session):
    sent = via.start()
    response = via.come_back(sent, code=None, error="access_denied")
    assert_refused(response, db_session, users_before=0, message="cancelled or refused")
    assert audit_events(db_session, "federation.failed")[0].details == {"reason": "access_denied"}


def test_callback_refuses_a_token_endpoint_error(via, upstream, db_session):
    sent = via.start()
    upstream.server.serve("/token", {"error": "invalid_grant"}, status=400)
    assert_refused(via.come_back(sent), db_session, users_before=0, message="refused to complete")


def test_start_when_no_key_decrypts_the_client_secret_is_refused_plainly(via, db_session):
    """The upstream cannot be authenticated to: the sign-in page says so before the person leaves (not a
    500), the reason audited."""
    store_under_a_dropped_key(db_session, via.provider, "client_secret_ciphertext")
    response = via.browser.http.get(f"/federation/{via.provider.id}/start")
    assert_refused(response, db_session, users_before=0, message="is not available right now")
    assert audit_events(db_session, "federation.failed")[-1].details == {"reason": "secret_undecryptable"}


def test_callback_when_no_key_decrypts_the_client_secret_is_refused_plainly(via, db_session):
    """The key went between the start and the upstream's answer: the code cannot be redeemed, so the
    sign-in page says so (not a 500), the reason audited."""
    sent = via.start()
    store_under_a_dropped_key(db_session, via.provider, "client_secret_ciphertext")
    assert_refused(via.come_back(sent), db_session, users_before=0, message="is not available right now")
    assert audit_events(db_session, "federation.failed")[-1].details == {"reason": "secret_undecryptable"}


def test_failed_sign_in_audit_carries_no_token_or_code(via, upstream, db_session):
    sent = via.start()
    upstream.issue(nonce="wrong")
    via.come_back(sent)
    event = audit_events(db_session, "federation.failed")[0]
    assert event.details == {"reason": "id_token_nonce"}
    assert str(event.target_id) == str(via.provider.id)


# --- an email that a local account has: link automatically, or after the password ---------------------

LOCAL_EMAIL = "pat@corp.example"


@pytest.mark.parametrize(("provider_options", "claims", "account"), [
    ({"trust_email": True}, {"email_verified": False}, {}),  # the upstream did not prove the email
    ({"trust_email": False}, {}, {}),  # the provider is not trusted for email
    ({"trust_email": True}, {}, {"email_verified": False}),  # the local email is not verified
    ({"trust_email": True}, {}, {"is_platform_admin": True}),  # never a platform administrator
], ids=["upstream-unverified", "provider-untrusted", "local-unverified", "platform-admin"])
def test_callback_asks_for_the_password_unless_every_link_condition_holds(via, make_provider, db_session,
                                                                         provider_options, claims, account):
    UserFactory(email=LOCAL_EMAIL, **account)
    via.provider = make_provider(**provider_options)
    response = via.sign_in(**claims)
    assert response.status_code == 303 and response.location.endswith("/federation/link")
    page = via.browser.http.get(response.location)
    assert "enter its password" in parse_page(page).text
    assert count(db_session, ExternalIdentity) == 0
    assert count(db_session, UserSession) == 0


def test_callback_links_automatically_when_every_condition_holds(via, make_provider, db_session):
    user = UserFactory(email=LOCAL_EMAIL)
    via.provider = make_provider(trust_email=True)
    response = via.sign_in()
    assert response.status_code == 200
    linked = db_session.scalar(select(ExternalIdentity))
    assert linked.user_id == user.id and linked.email == LOCAL_EMAIL
    assert audit_events(db_session, "federation.linked")[0].details["how"] == "verified_email"
    assert count(db_session, User) == 1


def link_page_after_sign_in(via) -> Any:
    UserFactory(email=LOCAL_EMAIL)
    response = via.sign_in()
    assert response.status_code == 303
    return via.browser.http.get(response.location)


def test_link_with_the_right_password_links_and_signs_in(via, provider, db_session):
    page = link_page_after_sign_in(via)
    form = parse_page(page).form
    response = via.browser.http.post(form.action, data={**form.fields, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.get_data(as_text=True)[:400]
    linked = db_session.scalar(select(ExternalIdentity))
    assert linked.user.email == LOCAL_EMAIL and linked.provider_id == provider.id
    assert audit_events(db_session, "federation.linked")[0].details["how"] == "reauthentication"
    live = db_session.scalars(select(UserSession).where(UserSession.ended_at.is_(None))).all()
    assert [(s.amr, s.identity_provider_id) for s in live] == [(["fed"], provider.id)]
    # The next sign-in through the provider needs no password.
    assert via.sign_in().status_code == 200


def test_link_with_a_wrong_password_links_nothing(via, db_session):
    page = link_page_after_sign_in(via)
    form = parse_page(page).form
    response = via.browser.http.post(form.action, data={**form.fields, "password": "not the password"})
    assert response.status_code == 401
    assert "Invalid email or password" in parse_page(response).text
    assert count(db_session, ExternalIdentity) == 0
    assert count(db_session, UserSession) == 0


def test_link_without_a_pending_identity_shows_the_sign_in_page(browser):
    response = browser.http.get("/federation/link")
    assert response.status_code == 400
    assert "nothing to link" in parse_page(response).text


def test_password_sign_in_refuses_an_account_without_password(via, browser, db_session):
    via.sign_in(email="jit@corp.example")
    other = Browser(browser.http.application.test_client())
    response = other.submit_login(other.login_page(), "jit@corp.example", "any password at all")
    assert response.status_code == 401
    assert "Invalid email or password" in parse_page(response).text


# --- the relying party's request, resumed ------------------------------------------------------------

def test_sign_in_page_offers_enabled_platform_providers(browser, make_provider):
    shown = make_provider(name="Corp SSO")
    hidden = make_provider(name="Old SSO", enabled=False)
    html = browser.login_page().get_data(as_text=True)
    assert f"/federation/{shown.id}/start" in html and "Sign in with Corp SSO" in html
    assert f"/federation/{hidden.id}/start" not in html


def test_authorization_through_idp_hint_issues_an_id_token_with_idp_and_amr(via, provider, upstream, web_client,
                                                                           exchange, client, db_session):
    pkce = make_pkce()
    params = authorization_params(web_client, pkce=pkce, idp_hint=str(provider.id))
    response = via.browser.authorize(params)
    assert response.status_code == 302 and response.location.startswith(f"/federation/{provider.id}/start?")
    start = via.browser.http.get(response.location)
    sent = query_of(start.location)
    upstream.issue(nonce=sent["nonce"], amr=["pwd", "mfa"])
    back = via.come_back(sent)
    assert back.status_code == 302 and back.location.startswith("/oauth2/authorize?")
    consent = via.browser.http.get(back.location)
    assert is_consent_page(consent)
    answer = via.browser.decide(consent, "allow")
    redirect = Redirect(response=answer, location=answer.location, params=query_of(answer.location),
                        client=web_client, redirect_uri=params["redirect_uri"], pkce=pkce, nonce=params["nonce"])
    tokens = exchange(redirect).get_json()
    claims = verify_jwt(client, tokens["id_token"]).claims
    assert claims["idp"] == str(provider.id)
    assert claims["amr"] == ["fed", "pwd", "mfa"]
    assert claims["email"] == "pat@corp.example" and claims["email_verified"] is True
    assert claims["nonce"] == params["nonce"]


def test_password_sign_in_id_token_has_no_idp(obtain_tokens, web_client, client):
    claims = verify_jwt(client, obtain_tokens(web_client)["id_token"]).claims
    assert "idp" not in claims and claims["amr"] == ["pwd"]


@pytest.mark.parametrize("hint", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "disabled"])
def test_authorize_with_an_unusable_idp_hint_shows_the_sign_in_page(browser, web_client, make_provider, hint):
    if hint == "disabled":
        hint = str(make_provider(enabled=False).id)
    response = browser.authorize(authorization_params(web_client, pkce=make_pkce(), idp_hint=hint))
    assert response.status_code == 302 and response.location.startswith("/login?")


def test_authorize_prompt_none_with_idp_hint_answers_login_required(browser, web_client, provider):
    response = browser.authorize(authorization_params(web_client, pkce=make_pkce(), idp_hint=str(provider.id),
                                                      prompt="none"))
    assert response.status_code == 302
    assert query_of(response.location)["error"] == "login_required"
    assert without_query(response.location) == web_client.redirect_uri


def test_failed_callback_keeps_the_relying_party_request_pending(via, provider, upstream, web_client):
    params = authorization_params(web_client, pkce=make_pkce(), idp_hint=str(provider.id))
    start = via.browser.http.get(via.browser.authorize(params).location)
    sent = query_of(start.location)
    response = via.come_back(sent, code=None, error="access_denied")
    form = next(f for f in parse_page(response).forms if f.fields.get("next"))
    assert form.fields["next"].startswith("/oauth2/authorize?")
    assert query_of(form.fields["next"])["client_id"] == web_client.client_id


def test_discovery_documents_the_idp_and_amr_claims(client):
    claims = client.get("/.well-known/openid-configuration").get_json()["claims_supported"]
    assert "idp" in claims and "amr" in claims


# --- Microsoft Entra ID (v2.0): the {tenantid} issuer template, allowed tenants, tid + oid, xms_edov -------

TENANT = "3f6c7a1e-8d2b-4c55-9a0e-1b2c3d4e5f60"
FOREIGN_TENANT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


@pytest.fixture
def entra(upstream, make_provider, via) -> Upstream:
    """The stand-in serving Entra ID's `organizations` discovery document (issuer template) under its
    authority, and a microsoft provider admitting TENANT."""
    upstream.server.serve_discovery(issuer=f"{upstream.url}/{{tenantid}}/v2.0",
                                    path="/organizations/v2.0/.well-known/openid-configuration",
                                    code_challenge_methods_supported=["S256"])
    via.provider = make_provider(kind="microsoft", name="Microsoft", settings={
        "tenant": "organizations", "authority": upstream.url, "allowed_tenants": [TENANT], "allow_any_tenant": False})
    return via


def entra_claims(upstream, tid: str = TENANT, **more: Any) -> dict[str, Any]:
    return {"iss": f"{upstream.url}/{tid}/v2.0", "tid": tid, "oid": "9b1c-oid", "sub": "pairwise-sub",
            "xms_edov": True, "preferred_username": "pat@corp.example"} | more


def test_microsoft_sign_in_uses_tid_and_oid_as_the_subject(entra, upstream, db_session):
    response = entra.sign_in(callback={"iss": None}, **entra_claims(upstream))
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert db_session.scalar(select(ExternalIdentity)).subject == f"{TENANT}:9b1c-oid"
    assert db_session.scalar(select(User)).email_verified is True


def test_microsoft_foreign_tenant_is_refused(entra, upstream, db_session):
    response = entra.sign_in(callback={"iss": None}, **entra_claims(upstream, tid=FOREIGN_TENANT))
    assert_refused(response, db_session, users_before=0, message="may not sign in here")
    assert audit_events(db_session, "federation.failed")[0].details == {"reason": "tenant_not_allowed"}


def test_microsoft_issuer_must_be_the_template_with_the_tokens_tid(entra, upstream, db_session):
    response = entra.sign_in(callback={"iss": None},
                             **entra_claims(upstream, iss=f"{upstream.url}/{FOREIGN_TENANT}/v2.0"))
    assert_refused(response, db_session, users_before=0, message="issued by another identity provider")


def test_microsoft_email_without_xms_edov_is_not_linked(entra, upstream, make_provider, db_session):
    UserFactory(email=LOCAL_EMAIL)
    entra.provider.trust_email = True
    db_session.add(entra.provider)
    db_session.commit()
    response = entra.sign_in(callback={"iss": None}, **entra_claims(upstream, xms_edov=None))
    assert response.status_code == 303 and response.location.endswith("/federation/link")
    assert count(db_session, ExternalIdentity) == 0


def test_microsoft_sign_in_finds_the_person_by_oid_not_email(entra, upstream, db_session):
    entra.sign_in(callback={"iss": None}, **entra_claims(upstream))
    response = entra.sign_in(callback={"iss": None}, **entra_claims(upstream, email="someone.else@corp.example",
                                                                     preferred_username="someone.else@corp.example"))
    assert response.status_code == 200
    assert count(db_session, User) == 1 and db_session.scalar(select(User)).email == LOCAL_EMAIL


def test_prompt_login_with_idp_hint_signs_in_again_upstream_and_resumes(via, provider, upstream, web_client):
    """OIDC Core §3.1.2.1 prompt=login: a signed-in browser authenticates again (here, upstream), and the
    request then goes on as after a password sign-in."""
    via.sign_in()
    params = authorization_params(web_client, pkce=make_pkce(), idp_hint=str(provider.id), prompt="login")
    response = via.browser.authorize(params)
    assert response.location.startswith(f"/federation/{provider.id}/start?")
    sent = query_of(via.browser.http.get(response.location).location)
    upstream.issue(nonce=sent["nonce"])
    back = via.come_back(sent)
    assert back.status_code == 302 and back.location.startswith("/oauth2/authorize?")
    assert is_consent_page(via.browser.http.get(back.location))
