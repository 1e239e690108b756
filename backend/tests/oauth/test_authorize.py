"""/oauth2/authorize: request validation, sign-in, prompt and max_age, consent, and the pages' protections."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.models import AuthorizationCode, Consent, OAuthClient, UserSession
from app.extensions import db
from app.models.base import utcnow
from app.services import authentication
from tests.conftest import count_sql
from tests.factories import DEFAULT_PASSWORD
from tests.oauth.helpers import (
    ISSUER,
    Redirect,
    WEB_OTHER_REDIRECT_URI,
    WEB_REDIRECT_URI,
    audit_events,
    authorization_params,
    is_consent_page,
    parse_page,
    query_of,
    verify_jwt,
    without_query,
)


def count(db_session, model) -> int:
    return db_session.scalar(select(func.count()).select_from(model))


def assert_error_page(response) -> None:
    """RFC 6749 §4.1.2.1 / RFC 9700 §4.1.3: an untrusted redirect URI is never redirected to."""
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "Location" not in response.headers
    assert "This sign-in request is not valid" in parse_page(response).text


def error_redirect(response, redirect_uri: str) -> dict[str, str]:
    """The parameters of an error redirected to the client (RFC 6749 §4.1.2.1)."""
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert without_query(response.location) == redirect_uri
    params = query_of(response.location)
    assert "code" not in params
    return params


@pytest.fixture
def first_party_client(register):
    """A first-party client: no consent page."""
    return register(name="First Party", redirect_uris=["https://first.example.com/cb"], first_party=True)


# --- requests that must not redirect --------------------------------------------------

def test_unknown_client_id_shows_an_error_page(signed_in, web_client, pkce, db_session):
    """RFC 6749 §4.1.2.1: an invalid client_id MUST NOT redirect; the user is informed."""
    params = authorization_params(web_client, pkce=pkce(), client_id="no-such-client")
    response = signed_in.authorize(params)
    assert_error_page(response)
    assert "invalid_client" in parse_page(response).text
    assert count(db_session, AuthorizationCode) == 0


def test_missing_redirect_uri_with_several_registered_shows_an_error_page(signed_in, web_client, pkce, db_session):
    """RFC 6749 §3.1.2.3: with several registered redirect URIs the request MUST include one;
    §4.1.2.1: the error is not redirected."""
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), redirect_uri=None))
    assert_error_page(response)
    assert count(db_session, AuthorizationCode) == 0


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example.net/callback",
    WEB_REDIRECT_URI + "/extra",                      # prefix-extended path
    WEB_REDIRECT_URI + "extra",
    WEB_REDIRECT_URI + "?next=https://evil.example.net",
    WEB_REDIRECT_URI + "/",
    WEB_REDIRECT_URI.replace("rp.example.com", "RP.EXAMPLE.COM"),  # case-changed host
    WEB_REDIRECT_URI.replace("/callback", "/Callback"),            # case-changed path
    WEB_REDIRECT_URI.replace("https://", "http://"),
    "https://rp.example.com.evil.example.net/callback",
    "https://rp.example.com:443/callback",
], ids=["other-host", "path-suffix", "appended", "query-added", "trailing-slash", "host-case", "path-case", "http",
        "host-suffix", "explicit-port"])
def test_mismatched_redirect_uri_shows_an_error_page(signed_in, web_client, pkce, db_session, redirect_uri):
    """RFC 9700 §4.1.3 and §2.1: redirect URIs are compared by exact string match; RFC 6749 §4.1.2.1:
    a redirect URI that does not match is never redirected to."""
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), redirect_uri=redirect_uri))
    assert_error_page(response)
    assert count(db_session, AuthorizationCode) == 0


def test_mismatched_redirect_uri_is_not_redirected_even_without_a_session(browser, web_client, pkce):
    """RFC 6749 §4.1.2.1: the request is validated before the user is asked to sign in."""
    response = browser.authorize(authorization_params(web_client, pkce=pkce(),
                                                      redirect_uri="https://evil.example.net/cb"))
    assert_error_page(response)


def test_second_registered_redirect_uri_is_accepted(authorize, web_client):
    """RFC 6749 §3.1.2.3: the request names one of the registered redirect URIs, matched exactly."""
    redirect = authorize(web_client, redirect_uri=WEB_OTHER_REDIRECT_URI)
    assert redirect.target == WEB_OTHER_REDIRECT_URI
    assert redirect.code


# --- errors redirected to the client -----------------------------------------------------

def test_unsupported_response_type_is_redirected(signed_in, web_client, pkce, db_session):
    """RFC 6749 §4.1.2.1: unsupported_response_type, with state; RFC 9207 §2: and iss."""
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), response_type="token"))
    params = error_redirect(response, WEB_REDIRECT_URI)
    assert params["error"] == "unsupported_response_type"
    assert params["state"] == "state-xyz"
    assert params["iss"] == ISSUER
    assert count(db_session, AuthorizationCode) == 0


@pytest.mark.parametrize("scope", ["openid invoices:read", "openid no-such-scope", "admin"],
                         ids=["not-allowed-for-client", "unknown", "only-unknown"])
def test_scope_the_client_may_not_have_is_invalid_scope(signed_in, web_client, pkce, db_session, scope):
    """RFC 6749 §4.1.2.1 and §3.3: invalid_scope; the request is refused, never silently narrowed."""
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), scope=scope))
    params = error_redirect(response, WEB_REDIRECT_URI)
    assert params["error"] == "invalid_scope"
    assert params["state"] == "state-xyz"
    assert params["iss"] == ISSUER
    assert count(db_session, AuthorizationCode) == 0


def test_public_client_without_code_challenge_is_invalid_request(signed_in, spa_client, db_session):
    """RFC 7636 §4.4.1 and RFC 9700 §2.1.1: PKCE is required; a missing code_challenge is invalid_request."""
    response = signed_in.authorize(authorization_params(spa_client))
    params = error_redirect(response, spa_client.redirect_uri)
    assert params["error"] == "invalid_request"
    assert params["state"] == "state-xyz"
    assert params["iss"] == ISSUER
    assert count(db_session, AuthorizationCode) == 0


def test_plain_code_challenge_method_is_invalid_request(signed_in, spa_client, pkce, db_session):
    """RFC 7636 §4.4.1 / RFC 9700 §2.1.1: only S256 is supported; plain is refused with invalid_request."""
    challenge = pkce().verifier
    response = signed_in.authorize(authorization_params(spa_client, code_challenge=challenge,
                                                        code_challenge_method="plain"))
    params = error_redirect(response, spa_client.redirect_uri)
    assert params["error"] == "invalid_request"
    assert params["iss"] == ISSUER
    assert count(db_session, AuthorizationCode) == 0


def test_code_challenge_without_method_is_invalid_request(signed_in, spa_client, pkce):
    """RFC 7636 §4.3: a missing code_challenge_method means plain, which is not supported (RFC 9700 §2.1.1)."""
    response = signed_in.authorize(authorization_params(spa_client, code_challenge=pkce().challenge))
    assert error_redirect(response, spa_client.redirect_uri)["error"] == "invalid_request"


def test_success_redirect_carries_code_state_and_iss(authorize, web_client, db_session):
    """RFC 6749 §4.1.2: code and the exact state; RFC 9207 §2: iss on the authorization response."""
    redirect = authorize(web_client, state="a b&c=d/é")
    assert redirect.target == WEB_REDIRECT_URI
    assert set(redirect.params) == {"code", "state", "iss"}
    assert redirect.params["state"] == "a b&c=d/é"
    assert redirect.params["iss"] == ISSUER
    assert count(db_session, AuthorizationCode) == 1


def test_the_authorization_request_is_validated_once_per_request(app, authorize, web_client):
    """Authlib validates an authorization request when the endpoint asks for consent and again when it
    answers; the grant keeps the first answer: the client is read once and the request's nonce (OIDC
    Core §3.1.2.1, a replay check against the stored codes) looked up once (the client cache is off in
    tests, so every validation reads the client's row)."""
    authorize(web_client)  # consent given: the next request is answered at once
    with app.app_context():
        engine = db.engine
    with count_sql(engine) as statements:
        authorize(web_client, consent=None, nonce="asked-once")
    selects = [s for s in statements if s.lstrip().startswith("SELECT")]

    nonce_lookups = [s for s in selects if "authorization_codes.nonce" in s]
    client_reads = [s for s in selects if "FROM oauth_clients" in s and s not in nonce_lookups]
    assert (len(client_reads), len(nonce_lookups)) == (1, 1)


def test_without_state_no_state_is_returned(authorize, web_client):
    """RFC 6749 §4.1.2: state is REQUIRED in the response only if it was in the request."""
    redirect = authorize(web_client, state=None)
    assert "state" not in redirect.params
    assert redirect.params["iss"] == ISSUER


# --- signing in ---------------------------------------------------------------------

def test_without_a_session_the_user_is_sent_to_sign_in_with_login_hint(browser, user, web_client, pkce, db_session):
    """OIDC Core §3.1.2.3: the user is authenticated first; §3.1.2.1: login_hint pre-fills the identifier."""
    params = authorization_params(web_client, pkce=pkce(), login_hint=user.email)
    response = browser.authorize(params)
    assert response.status_code == 302
    assert without_query(response.location) == "/login"
    login_query = query_of(response.location)
    assert login_query["login_hint"] == user.email
    assert query_of(login_query["next"])["client_id"] == web_client.client_id
    page = browser.follow(response)
    assert page.status_code == 200
    email = next(i for i in parse_page(page).form.inputs if i.get("name") == "email")
    assert email["value"] == user.email
    assert count(db_session, AuthorizationCode) == 0

    # Signing in continues the same authorization request.
    signed_in = browser.submit_login(page, user.email)
    assert signed_in.status_code == 302
    consent = browser.follow(signed_in)
    assert is_consent_page(consent)
    done = browser.decide(consent, "allow")
    assert without_query(done.location) == WEB_REDIRECT_URI
    assert query_of(done.location)["state"] == "state-xyz"
    assert "code" in query_of(done.location)


def test_login_hint_is_escaped_in_the_login_page(browser, web_client, pkce):
    """OIDC Core §3.1.2.1 (login_hint is attacker-controllable input) and RFC 6819 §4.4.1.1: it is
    only ever the value of the email input, never markup."""
    hint = 'a@example.com"><script>alert(1)</script>'
    response = browser.follow(browser.authorize(authorization_params(web_client, pkce=pkce(), login_hint=hint)))
    page = parse_page(response)
    email = next(i for i in page.form.inputs if i.get("name") == "email")
    assert email["value"] == hint
    assert "<script>" not in response.get_data(as_text=True)


@pytest.mark.parametrize("next_url", ["https://evil.example.net/", "//evil.example.net/oauth2/authorize",
                                      "/api/v1/users/me", "/oauth2/authorize-elsewhere", "/invitations/accepted"],
                         ids=["absolute", "scheme-relative", "other-path", "authorize-prefix", "invitation-prefix"])
def test_sign_in_never_redirects_outside_the_authorization_endpoint(browser, user, next_url):
    """RFC 9700 §4.11 (open redirectors): after sign-in the browser only returns to /oauth2/authorize."""
    page = browser.login_page(next=next_url)
    response = browser.submit_login(page, user.email)
    assert response.status_code == 200
    assert "Location" not in response.headers


def test_prompt_none_without_a_session_is_login_required(browser, web_client, pkce):
    """OIDC Core §3.1.2.1 (prompt=none) and §3.1.2.6: login_required, with state and iss (RFC 9207 §2)."""
    response = browser.authorize(authorization_params(web_client, pkce=pkce(), prompt="none"))
    params = error_redirect(response, WEB_REDIRECT_URI)
    assert params["error"] == "login_required"
    assert params["state"] == "state-xyz"
    assert params["iss"] == ISSUER


def test_prompt_none_signed_in_without_consent_is_consent_required(signed_in, web_client, pkce, db_session):
    """OIDC Core §3.1.2.1 (prompt=none) and §3.1.2.6: consent_required; no page is shown."""
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), prompt="none"))
    params = error_redirect(response, WEB_REDIRECT_URI)
    assert params["error"] == "consent_required"
    assert params["state"] == "state-xyz"
    assert params["iss"] == ISSUER
    assert count(db_session, Consent) == 0


def test_prompt_none_signed_in_with_consent_issues_a_code(signed_in, authorize, web_client, pkce):
    """OIDC Core §3.1.2.1: prompt=none succeeds silently when the user is signed in and has consented."""
    authorize(web_client)
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), prompt="none"))
    assert response.status_code == 302
    assert "code" in query_of(response.location)


def test_prompt_login_forces_sign_in_and_then_continues(signed_in, user, web_client, pkce, db_session):
    """OIDC Core §3.1.2.1 (prompt=login): re-authenticate even when signed in; afterwards the
    request completes (consent included) instead of asking to sign in again."""
    params = authorization_params(web_client, pkce=pkce(), prompt="login")
    response = signed_in.authorize(params)
    assert response.status_code == 302
    assert without_query(response.location) == "/login"

    after_login = signed_in.follow_login(response, user)
    assert after_login.status_code == 302
    consent = signed_in.follow(after_login)
    assert is_consent_page(consent), consent.location if consent.status_code == 302 else consent.status_code
    done = signed_in.decide(consent, "allow")
    assert done.status_code == 302
    assert without_query(done.location) == WEB_REDIRECT_URI, done.location
    assert "code" in query_of(done.location)
    assert count(db_session, UserSession) == 2  # the re-authentication is a new session


def test_prompt_login_with_first_party_client_continues_after_sign_in(signed_in, user, first_party_client, pkce):
    """OIDC Core §3.1.2.1 (prompt=login): after re-authenticating, the code is issued (no loop)."""
    response = signed_in.authorize(authorization_params(first_party_client, pkce=pkce(), prompt="login"))
    after_login = signed_in.follow_login(response, user)
    done = signed_in.follow(after_login)
    assert done.status_code == 302
    assert "code" in query_of(done.location)


def _backdate_sessions(db_session, user, seconds: int) -> None:
    """Pretend the user's sign-ins happened `seconds` earlier (no sleeping in tests)."""
    for session in db_session.scalars(select(UserSession).where(UserSession.user_id == user.id)):
        session.created_at -= timedelta(seconds=seconds)
    db_session.commit()


def test_max_age_zero_forces_sign_in_and_auth_time_is_the_new_sign_in(signed_in, user, first_party_client, pkce,
                                                                     exchange, client, db_session):
    """OIDC Core §3.1.2.1 (max_age): an older authentication forces a new one; §2: auth_time in the
    id_token is when that new authentication happened."""
    _backdate_sessions(db_session, user, 3600)
    old = db_session.scalar(select(UserSession).where(UserSession.user_id == user.id))
    old_auth_time = int(old.created_at.timestamp())

    pair = pkce()
    params = authorization_params(first_party_client, pkce=pair, max_age="0")
    response = signed_in.authorize(params)
    assert without_query(response.location) == "/login"
    done = signed_in.follow(signed_in.follow_login(response, user))
    assert without_query(done.location) == first_party_client.redirect_uri

    tokens = exchange(Redirect(response=done, location=done.location, params=query_of(done.location),
                               client=first_party_client, redirect_uri=first_party_client.redirect_uri, pkce=pair))
    assert tokens.status_code == 200
    claims = verify_jwt(client, tokens.get_json()["id_token"]).claims
    new = db_session.scalar(select(UserSession).where(UserSession.user_id == user.id, UserSession.id != old.id))
    assert claims["auth_time"] == int(new.created_at.timestamp())
    assert claims["auth_time"] > old_auth_time
    assert claims["nonce"] == params["nonce"]


def test_max_age_longer_than_the_session_does_not_ask_again(signed_in, user, first_party_client, pkce, db_session):
    """OIDC Core §3.1.2.1 (max_age): an authentication younger than max_age is reused."""
    _backdate_sessions(db_session, user, 600)
    response = signed_in.authorize(authorization_params(first_party_client, pkce=pkce(), max_age="3600"))
    assert response.status_code == 302
    assert "code" in query_of(response.location)


# --- consent -------------------------------------------------------------------------

def test_consent_page_lists_the_scopes_with_allow_and_deny(signed_in, web_client, pkce, db_session):
    """OIDC Core §3.1.2.4: the user is asked to authorize the scopes requested by the client."""
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(),
                                                        scope="openid profile email offline_access"))
    assert response.status_code == 200
    page = parse_page(response)
    assert "Relying Party wants to access your account" in page.text
    for description in ("Know who you are", "See your name", "See your email address",
                        "Stay signed in to your account"):
        assert description in page.text
    assert page.form.method == "post"
    assert ("decision", "allow") in page.form.buttons
    assert ("decision", "deny") in page.form.buttons
    assert page.form.fields["csrf_token"]
    assert count(db_session, Consent) == 0


def test_deny_redirects_access_denied_with_state_and_iss(signed_in, web_client, pkce, db_session):
    """RFC 6749 §4.1.2.1: access_denied, with state; RFC 9207 §2: with iss. Nothing is recorded."""
    consent = signed_in.authorize(authorization_params(web_client, pkce=pkce()))
    response = signed_in.decide(consent, "deny")
    params = error_redirect(response, WEB_REDIRECT_URI)
    assert params["error"] == "access_denied"
    assert params["state"] == "state-xyz"
    assert params["iss"] == ISSUER
    assert count(db_session, Consent) == 0
    assert count(db_session, AuthorizationCode) == 0


def test_allow_records_consent_and_audits_it(authorize, user, web_client, db_session):
    """OIDC Core §3.1.2.4: the decision is stored, so it need not be asked again."""
    authorize(web_client, scope="openid email")
    consent = db_session.scalar(select(Consent))
    assert consent.user_id == user.id
    assert sorted(consent.scopes) == ["email", "openid"]
    events = audit_events(db_session, "oauth.consent_granted")
    assert len(events) == 1
    assert events[0].actor_user_id == user.id
    assert events[0].target_id == web_client.client_id


def test_consent_is_remembered_and_prompt_consent_asks_again(signed_in, authorize, web_client, pkce):
    """OIDC Core §3.1.2.4 (stored consent) and §3.1.2.1 (prompt=consent MUST prompt for consent)."""
    authorize(web_client)
    again = signed_in.authorize(authorization_params(web_client, pkce=pkce()))
    assert again.status_code == 302
    assert "code" in query_of(again.location)

    forced = signed_in.authorize(authorization_params(web_client, pkce=pkce(), prompt="consent"))
    assert is_consent_page(forced)
    done = signed_in.decide(forced, "allow")
    assert "code" in query_of(done.location)


def test_consent_for_more_scopes_asks_again(signed_in, authorize, web_client, pkce):
    """OIDC Core §3.1.2.4: consent covers the scopes the user saw; new scopes need a new decision."""
    authorize(web_client, scope="openid")
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), scope="openid email"))
    assert is_consent_page(response)


def test_first_party_client_skips_consent(signed_in, first_party_client, pkce, db_session):
    """OIDC Core §3.1.2.4: consent may be established by other means (a first-party client)."""
    response = signed_in.authorize(authorization_params(first_party_client, pkce=pkce()))
    assert response.status_code == 302
    assert "code" in query_of(response.location)
    assert count(db_session, Consent) == 0


@pytest.mark.parametrize("csrf_token", ["", "forged-token"], ids=["missing", "forged"])
def test_consent_post_without_a_valid_csrf_token_is_rejected(signed_in, web_client, pkce, db_session, csrf_token):
    """OWASP CSRF / RFC 6749 §10.12: a forged Allow creates no consent and no code."""
    consent = signed_in.authorize(authorization_params(web_client, pkce=pkce()))
    response = signed_in.decide(consent, "allow", csrf_token=csrf_token)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert count(db_session, Consent) == 0
    assert count(db_session, AuthorizationCode) == 0
    assert audit_events(db_session, "oauth.consent_granted") == []


def test_the_login_page_locks_out_as_the_api_does(browser, user, settings, db_session):
    """The same lockout as the API login: the failure that reaches LOGIN_MAX_FAILURES answers 423 with
    Retry-After (RFC 9110 §10.2.3), on the page, with no API Bearer challenge."""
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        assert browser.submit_login(browser.login_page(), user.email, "not the password").status_code == 401
    response = browser.submit_login(browser.login_page(), user.email, "not the password")
    assert response.status_code == 423
    assert 0 < int(response.headers["Retry-After"]) <= settings.LOGIN_LOCKOUT_SECONDS
    assert "WWW-Authenticate" not in response.headers
    assert response.mimetype == "text/html"
    assert browser.submit_login(browser.login_page(), user.email, DEFAULT_PASSWORD).status_code == 423
    assert count(db_session, UserSession) == 0


def page_as_seen(response, email: str) -> tuple:
    """A sign-in page as the browser gets it, without what differs on every request or browser (request
    id, date, CSP nonce, CSRF token, cookie values) and with the email it echoes into the form."""
    def normalised(text: str) -> str:
        for pattern, replacement in [(r"nonce-[\w-]+", "nonce"), (r'nonce="[\w-]+"', "nonce"),
                                     (r'name="csrf_token" value="[^"]*"', 'name="csrf_token"')]:
            text = re.sub(pattern, replacement, text)
        return text.replace(email, "EMAIL")
    headers = sorted((k, re.sub(r"^([^=]+)=[^;]*", r"\1=", v) if k == "Set-Cookie" else normalised(v))
                     for k, v in response.headers.items() if k not in {"X-Request-ID", "Date"})
    return response.status_code, headers, normalised(response.get_data(as_text=True))


@pytest.mark.parametrize("last_password", [DEFAULT_PASSWORD, "not the password"], ids=["right", "wrong"])
def test_the_login_page_answers_a_locked_account_and_an_unknown_email_identically(new_browser, user, settings,
                                                                                   monkeypatch, last_password):
    """README: neither the answer nor its timing tells whether an account exists, on the page too."""
    now = utcnow()
    monkeypatch.setattr(authentication, "utcnow", lambda: now)  # Retry-After must not tick between the two

    def sequence(email: str) -> list[tuple]:
        browser = new_browser()
        return [page_as_seen(browser.submit_login(browser.login_page(), email, password), email)
                for password in ["not the password"] * settings.LOGIN_MAX_FAILURES + [last_password]]

    account = sequence(user.email)
    unknown = sequence("0" + user.email[1:])  # as long: the page echoes the email, and says how long it is

    assert account == unknown
    assert [status for status, *_ in account] == [401] * (settings.LOGIN_MAX_FAILURES - 1) + [423, 423]


@pytest.mark.parametrize("csrf_token", ["", "forged-token"], ids=["missing", "forged"])
def test_login_post_without_a_valid_csrf_token_is_rejected(browser, user, db_session, csrf_token):
    """RFC 6749 §10.12 / OIDC Core §3.1.2.3: a login CSRF must not sign the browser in."""
    page = parse_page(browser.login_page())
    response = browser.http.post("/login", data={"csrf_token": csrf_token, "email": user.email,
                                                 "password": DEFAULT_PASSWORD})
    assert page.form.fields["csrf_token"]
    assert response.status_code == 400
    assert count(db_session, UserSession) == 0
    assert audit_events(db_session, "auth.login") == []
    assert "Set-Cookie" not in response.headers or "gatehouse_session=" not in response.headers["Set-Cookie"]


def test_consent_post_is_bound_to_the_signed_in_user(signed_in, web_client, pkce, new_browser, db_session):
    """RFC 6749 §10.12: the consent form of one browser cannot be replayed by another one."""
    consent = signed_in.authorize(authorization_params(web_client, pkce=pkce()))
    form = parse_page(consent).form
    other = new_browser()
    response = other.http.post(form.action, data={**form.fields, "decision": "allow"})
    assert response.status_code in (302, 400)
    if response.status_code == 302:
        assert without_query(response.location) == "/login"
    assert count(db_session, Consent) == 0


# --- page protections ---------------------------------------------------------------

def _pages(browser, user, web_client, pkce):
    login = browser.login_page()
    bad_request = browser.authorize(authorization_params(web_client, pkce=pkce(), client_id="nope"))
    browser.sign_in(user)
    consent = browser.authorize(authorization_params(web_client, pkce=pkce()))
    logout = browser.http.get("/oauth2/logout")
    return {"login": login, "error": bad_request, "consent": consent, "logout": logout}


def test_html_pages_cannot_be_framed(browser, user, web_client, pkce):
    """RFC 6749 §10.13 (clickjacking): X-Frame-Options DENY and CSP frame-ancestors 'none'."""
    for name, response in _pages(browser, user, web_client, pkce).items():
        assert response.mimetype == "text/html", name
        assert response.headers["X-Frame-Options"] == "DENY", name
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], name


@pytest.mark.parametrize(("query", "inputs"), [({}, {"email"}), ({"login_hint": "someone@example.com"},
                                                                  {"email", "password"})])
def test_login_page_labels_every_input(browser, query, inputs):
    """WCAG 2.1 SC 1.3.1 / 3.3.2 (used by OIDC Core §3.1.2.3's sign-in page): each visible input has a label,
    on the first step (the email) and the password step."""
    page = parse_page(browser.login_page(**query))
    visible = [i for i in page.form.inputs if i.get("type") != "hidden"]
    assert {i["name"] for i in visible} == inputs
    for element in visible:
        assert element.get("id") and element["id"] in page.labels_for, element


def test_a_deleted_client_cannot_complete_a_pending_request(signed_in, web_client, pkce, db_session):
    """RFC 6749 §4.1.2.1: the client is checked again when the user decides."""
    consent = signed_in.authorize(authorization_params(web_client, pkce=pkce()))
    db_session.delete(db_session.scalar(select(OAuthClient).where(OAuthClient.client_id == web_client.client_id)))
    db_session.commit()
    response = signed_in.decide(consent, "allow")
    assert_error_page(response)
    assert count(db_session, Consent) == 0


def test_a_sign_in_for_one_request_does_not_satisfy_prompt_login_of_the_next(signed_in, user, first_party_client,
                                                                           pkce):
    """OIDC Core §3.1.2.1 (prompt=login): every such request re-authenticates the user, even right after another."""
    first = signed_in.authorize(authorization_params(first_party_client, pkce=pkce(), prompt="login"))
    done = signed_in.follow(signed_in.follow_login(first, user))
    assert "code" in query_of(done.location)

    second = signed_in.authorize(authorization_params(first_party_client, pkce=pkce(), prompt="login"))
    assert second.status_code == 302
    assert without_query(second.location) == "/login"
