"""/oauth2/logout: OIDC RP-Initiated Logout 1.0."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from app.models import SessionEndReason, UserSession
from tests.factories import UserFactory
from tests.oauth.helpers import (
    ISSUER,
    WEB_POST_LOGOUT_URI,
    audit_events,
    authorization_params,
    parse_page,
    query_of,
    without_query,
)

COOKIE = "gatehouse_session"


def browser_session(db_session, user) -> UserSession:
    [row] = db_session.scalars(select(UserSession).where(UserSession.user_id == user.id)).all()
    return row


def assert_signed_out(response, db_session, user) -> None:
    """The browser session is ended in the database and its cookie is cleared."""
    row = browser_session(db_session, user)
    assert row.ended_at is not None
    assert row.end_reason == SessionEndReason.LOGOUT
    set_cookie = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{COOKIE}=")]
    assert set_cookie, response.headers
    assert set_cookie[0].startswith(f"{COOKIE}=;")
    assert "Expires=Thu, 01 Jan 1970" in set_cookie[0] or "Max-Age=0" in set_cookie[0]
    assert [e.target_id for e in audit_events(db_session, "auth.logout")] == [str(row.id)]


def assert_still_signed_in(db_session, user) -> None:
    assert browser_session(db_session, user).ended_at is None
    assert audit_events(db_session, "auth.logout") == []


@pytest.fixture
def id_token(obtain_tokens, web_client) -> str:
    return obtain_tokens(web_client, scope="openid")["id_token"]


def test_logout_with_id_token_hint_redirects_to_the_registered_uri(signed_in, id_token, web_client, pkce, user,
                                                                   db_session):
    """RP-Initiated Logout 1.0 §2 (id_token_hint, post_logout_redirect_uri, state) and §3 (redirect to a
    registered post_logout_redirect_uri with state): the OP session ends."""
    response = signed_in.http.get("/oauth2/logout", query_string={
        "id_token_hint": id_token, "post_logout_redirect_uri": WEB_POST_LOGOUT_URI, "state": "bye-123"})
    assert response.status_code == 302
    assert without_query(response.location) == WEB_POST_LOGOUT_URI
    assert query_of(response.location) == {"state": "bye-123"}
    assert_signed_out(response, db_session, user)
    assert signed_in.http.get_cookie(COOKIE) is None

    # The browser is signed out: the next authorization request asks to sign in again.
    again = signed_in.authorize(authorization_params(web_client, pkce=pkce()))
    assert again.status_code == 302
    assert without_query(again.location) == "/login"


def test_logout_with_client_id_and_id_token_hint(signed_in, id_token, web_client, user, db_session):
    """RP-Initiated Logout 1.0 §2: client_id may accompany id_token_hint when it matches its aud."""
    response = signed_in.http.get("/oauth2/logout", query_string={
        "id_token_hint": id_token, "client_id": web_client.client_id, "post_logout_redirect_uri": WEB_POST_LOGOUT_URI})
    assert response.status_code == 302
    assert response.location == WEB_POST_LOGOUT_URI
    assert_signed_out(response, db_session, user)


def test_client_id_not_matching_the_id_token_is_refused(signed_in, id_token, spa_client, user, db_session):
    """RP-Initiated Logout 1.0 §2: when both are given, client_id must match the id_token's aud."""
    response = signed_in.http.get("/oauth2/logout", query_string={
        "id_token_hint": id_token, "client_id": spa_client.client_id, "post_logout_redirect_uri": WEB_POST_LOGOUT_URI})
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert_still_signed_in(db_session, user)


@pytest.mark.parametrize("uri", ["https://evil.example.net/", WEB_POST_LOGOUT_URI + "/more", "https://rp.example.com/"],
                         ids=["other-host", "prefix-extended", "other-path"])
def test_unregistered_post_logout_redirect_uri_shows_the_signed_out_page(signed_in, id_token, user, db_session, uri):
    """RP-Initiated Logout 1.0 §3: the OP MUST NOT redirect to an unregistered post_logout_redirect_uri
    (exact match); it signs out and shows its own page."""
    response = signed_in.http.get("/oauth2/logout", query_string={
        "id_token_hint": id_token, "post_logout_redirect_uri": uri, "state": "s"})
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "You are signed out" in parse_page(response).text
    assert_signed_out(response, db_session, user)


def test_logout_without_id_token_hint_asks_for_confirmation(signed_in, user, db_session):
    """RP-Initiated Logout 1.0 §2: without id_token_hint the OP SHOULD ask the user whether to log out;
    the confirmation is a CSRF-protected POST that then signs out."""
    page = signed_in.http.get("/oauth2/logout", query_string={"post_logout_redirect_uri": WEB_POST_LOGOUT_URI})
    assert page.status_code == 200
    form = parse_page(page).form
    assert form.method == "post"
    assert ("confirm", "yes") in form.buttons
    assert form.fields["csrf_token"]
    assert_still_signed_in(db_session, user)

    response = signed_in.http.post(form.action, data={**form.fields, "confirm": "yes"})
    assert response.status_code == 200  # no id_token_hint: no redirect to the RP (§3)
    assert "Location" not in response.headers
    assert "You are signed out" in parse_page(response).text
    assert_signed_out(response, db_session, user)


@pytest.mark.parametrize("csrf_token", ["", "forged"], ids=["missing", "forged"])
def test_logout_confirmation_without_csrf_token_is_refused(signed_in, user, db_session, csrf_token):
    """RP-Initiated Logout 1.0 §6 (a logout request can be forged): the confirmation needs the CSRF token."""
    form = parse_page(signed_in.http.get("/oauth2/logout")).form
    response = signed_in.http.post(form.action, data={"csrf_token": csrf_token, "confirm": "yes"})
    assert response.status_code == 400
    assert_still_signed_in(db_session, user)


def test_id_token_hint_signed_by_another_key_is_refused(signed_in, id_token, web_client, user, db_session):
    """RP-Initiated Logout 1.0 §2: the OP verifies it issued the id_token_hint; a foreign signature is an error."""
    foreign = RSAKey.generate_key(2048, parameters={"kid": "not-ours"})
    now = int(time.time())
    forged = jwt.encode({"alg": "RS256", "kid": "not-ours"},
                        {"iss": ISSUER, "sub": str(user.id), "aud": web_client.client_id, "iat": now,
                         "exp": now + 300}, foreign)
    response = signed_in.http.get("/oauth2/logout", query_string={
        "id_token_hint": forged, "post_logout_redirect_uri": WEB_POST_LOGOUT_URI})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "Location" not in response.headers
    assert_still_signed_in(db_session, user)


def test_access_token_is_not_an_id_token_hint(signed_in, obtain_tokens, web_client, user, db_session):
    """RP-Initiated Logout 1.0 §2 (id_token_hint is an ID Token) and RFC 8725 §3.11: an access token
    signed by the same key does not prove the RP's request."""
    tokens = obtain_tokens(web_client, scope="openid")
    response = signed_in.http.get("/oauth2/logout", query_string={
        "id_token_hint": tokens["access_token"], "post_logout_redirect_uri": WEB_POST_LOGOUT_URI})
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert_still_signed_in(db_session, user)


def test_logout_without_a_session_still_redirects(new_browser, id_token):
    """RP-Initiated Logout 1.0 §3: the RP is redirected back even if the user had already signed out."""
    response = new_browser().http.get("/oauth2/logout", query_string={
        "id_token_hint": id_token, "post_logout_redirect_uri": WEB_POST_LOGOUT_URI, "state": "s"})
    assert response.status_code == 302
    assert response.location == WEB_POST_LOGOUT_URI + "?state=s"


def test_id_token_hint_of_another_user_asks_for_confirmation(new_browser, register, web_client, id_token, user,
                                                             db_session):
    """RP-Initiated Logout 1.0 §2: an id_token_hint that does not match the OP's current session makes the
    request suspect; the user confirms before being signed out (a link with someone else's ID Token
    must not sign them out silently)."""
    victim = UserFactory()
    browser = new_browser()
    browser.sign_in(victim)
    response = browser.http.get("/oauth2/logout", query_string={
        "id_token_hint": id_token, "post_logout_redirect_uri": WEB_POST_LOGOUT_URI})
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert ("confirm", "yes") in parse_page(response).form.buttons
    assert browser_session(db_session, victim).ended_at is None


def test_confirmed_suspect_logout_signs_out_and_redirects(new_browser, id_token, db_session):
    """RP-Initiated Logout 1.0 §2–§3: once the user confirms, the OP signs out and, the id_token_hint
    having been verified, redirects to the registered post_logout_redirect_uri."""
    victim = UserFactory()
    browser = new_browser()
    browser.sign_in(victim)
    page = browser.http.get("/oauth2/logout", query_string={
        "id_token_hint": id_token, "post_logout_redirect_uri": WEB_POST_LOGOUT_URI, "state": "s"})
    form = parse_page(page).form
    response = browser.http.post(form.action, data={**form.fields, "confirm": "yes"})
    assert response.status_code == 302
    assert response.location == WEB_POST_LOGOUT_URI + "?state=s"
    assert browser_session(db_session, victim).ended_at is not None


def test_a_posted_suspect_logout_keeps_its_parameters_through_the_confirmation(new_browser, id_token, db_session):
    """RP-Initiated Logout 1.0 §2: the OP MUST support POST at the logout endpoint; a POSTed request's
    post_logout_redirect_uri and state survive the confirmation page (§3), as a GET request's do."""
    victim = UserFactory()
    browser = new_browser()
    browser.sign_in(victim)
    page = browser.http.post("/oauth2/logout", data={
        "id_token_hint": id_token, "post_logout_redirect_uri": WEB_POST_LOGOUT_URI, "state": "s"})
    assert page.status_code == 200 and browser_session(db_session, victim).ended_at is None
    form = parse_page(page).form
    response = browser.http.post(form.action, data={**form.fields, "confirm": "yes"})
    assert response.status_code == 302
    assert response.location == WEB_POST_LOGOUT_URI + "?state=s"
    assert browser_session(db_session, victim).ended_at is not None


@pytest.mark.parametrize("repeated", ["id_token_hint", "post_logout_redirect_uri", "state"])
def test_a_repeated_logout_parameter_is_refused(signed_in, id_token, user, db_session, repeated):
    """As for authorization requests (RFC 6749 §3.1), a parameter MUST NOT be sent twice: reading the
    first would let two readers of one request see two requests (issue 12, finding 10)."""
    query = {"id_token_hint": id_token, "post_logout_redirect_uri": WEB_POST_LOGOUT_URI, "state": "s"}
    query_string = [*query.items(), (repeated, "second")]

    response = signed_in.http.get("/oauth2/logout", query_string=query_string)

    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "sent more than once" in response.get_data(as_text=True)
    assert_still_signed_in(db_session, user)
