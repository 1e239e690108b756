"""Property-based requests to the protocol endpoints (issue 12): authorize, token (each grant, and grant
types the server does not know), introspection, revocation, UserInfo and logout, with every parameter
kept, dropped, repeated or replaced by arbitrary text (NUL, quotes, backslash, DEL, non-ASCII, invalid
UTF-8, values of many kilobytes), unknown parameters, bodies of every content type, HTTP Basic
credentials of any bytes, and token requests with and without a CORS Origin.

The rule for every answer: never a 5xx; a JSON answer that is an error carries an `error` from the
registered set (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1, OIDC Core §3.1.2.6) and an
error_description within RFC 6749 §5.2's characters; a redirect goes only to a URI the client registered
(RFC 6749 §3.1.2, RP-Initiated Logout 1.0 §3) or to this server's own pages.

Bounded and deterministic: derandomized, MAX_EXAMPLES per test, no deadline. The totals are printed in
pytest's terminal summary (tests/fuzz/conftest.py).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.oauth.conftest import (  # noqa: F401  (fixtures, used by name)
    USER_SCOPES,
    authorize,
    browser,
    client,
    exchange,
    http_client,
    machine_client,
    obtain_tokens,
    pkce,
    register,
    signed_in,
    spa_client,
    token_request,
    web_client,
)
from tests.oauth.conftest import settings as oauth_settings  # noqa: F401
from tests.oauth.helpers import SPA_REDIRECT_URI, WEB_POST_LOGOUT_URI, authorization_params, make_pkce

MAX_EXAMPLES = 60
# An Origin no client registered: the CORS check runs and allows nothing.
FOREIGN_ORIGIN = "https://not-a-client.example"
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])

# Every `error` a protocol endpoint may answer: RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009
# §2.2.1, OIDC Core §3.1.2.6 (RFC 7662 adds none).
RFC_ERRORS = {
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope",
    "server_error", "temporarily_unavailable", "invalid_client", "invalid_grant", "unsupported_grant_type",
    "invalid_token", "insufficient_scope", "unsupported_token_type", "interaction_required", "login_required",
    "account_selection_required", "consent_required", "invalid_request_uri", "invalid_request_object",
    "request_not_supported", "request_uri_not_supported", "registration_not_supported",
}
REQUESTS: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()

# --- strategies ---------------------------------------------------------------------------------

# The characters finding 1 and 2 were about, and those that matter to form encoding.
AWKWARD = ["\x00", '"', "\\", "\x7f", "é", "€", "😀", "%", "&", "=", "+", ";", "#", "?", "/", " ", "\n", "\r",
           "\t", "'", "<", "\ufffd", "\u202e"]
odd_text = st.text(alphabet=st.one_of(st.sampled_from(AWKWARD), st.characters(codec="utf-8")), max_size=30)
long_text = st.builds(lambda unit, n: unit * n, st.sampled_from(["a", "é", "\x00", "%", "\\"]),
                      st.integers(min_value=1_000, max_value=20_000))
# Percent-encoded as they are, so the server decodes bytes that need not be UTF-8.
raw_bytes = st.binary(min_size=1, max_size=12)
PARAMETER_NAMES = ["response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "prompt", "max_age",
                   "code_challenge", "code_challenge_method", "response_mode", "request", "request_uri",
                   "organization", "grant_type", "code", "code_verifier", "refresh_token", "client_secret",
                   "client_assertion", "client_assertion_type", "token", "token_type_hint", "access_token",
                   "id_token_hint", "post_logout_redirect_uri", "login_hint", "decision", "csrf_token"]

Pairs = list[tuple[str, "str | bytes"]]


def value(valid: str) -> st.SearchStrategy[str | bytes]:
    return st.one_of(st.just(valid), odd_text, st.just(valid).flatmap(lambda v: odd_text.map(lambda t: v + t)),
                     long_text, raw_bytes)


def parameters(base: dict[str, str]) -> st.SearchStrategy[Pairs]:
    """The `base` request with each parameter kept, dropped, changed or repeated, plus unknown ones."""
    def one(name: str, valid: str) -> st.SearchStrategy[Pairs]:
        return st.one_of(st.just([(name, valid)]), st.just([]), value(valid).map(lambda v: [(name, v)]),
                         st.tuples(value(valid), value(valid)).map(lambda vs: [(name, vs[0]), (name, vs[1])]))
    extra = st.lists(st.tuples(st.one_of(st.sampled_from(PARAMETER_NAMES), odd_text), value("")), max_size=2)
    return st.tuples(*(one(name, valid) for name, valid in base.items()), extra).map(
        lambda parts: [pair for part in parts for pair in part])


def encoded(pairs: Pairs) -> str:
    return "&".join(f"{quote(name, safe='')}={quote(item, safe='')}" for name, item in pairs)


def as_text(item: str | bytes) -> str:
    return item.decode("latin-1") if isinstance(item, bytes) else item


BODY_KINDS = ["form", "form", "form", "multipart", "json", "text", "none"]


def body(pairs: Pairs, kind: str) -> dict[str, Any]:
    """Test-client arguments sending `pairs` as a body of this kind."""
    if kind == "multipart":
        return {"data": MultiDict([(name, as_text(item)) for name, item in pairs]), "content_type": "multipart/form-data"}
    if kind == "json":
        return {"data": json.dumps({name: as_text(item) for name, item in pairs}), "content_type": "application/json"}
    content_type = {"form": "application/x-www-form-urlencoded", "text": "text/plain"}.get(kind)
    return {"data": encoded(pairs), **({"content_type": content_type} if content_type else {})}


def basic(credentials: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60)

# --- what every answer must be --------------------------------------------------------------------


def sent(endpoint: str, response) -> None:
    REQUESTS[endpoint] += 1
    STATUSES[response.status_code] += 1
    assert response.status_code < 500, (endpoint, response.status_code, response.get_data(as_text=True)[:300])


def assert_rfc_error_body(response) -> None:
    body = response.get_json(silent=True)
    assert isinstance(body, dict), response.get_data(as_text=True)[:300]
    assert body["error"] in RFC_ERRORS, body
    description = body.get("error_description", "")
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description), description


def assert_json_answer(response) -> dict:
    if response.status_code >= 400:
        assert_rfc_error_body(response)
    body = response.get_json(silent=True)
    assert isinstance(body, dict), response.get_data(as_text=True)[:300]
    return body


def assert_redirect_within(response, registered: set[str]) -> None:
    """A redirect goes to one of `registered` (with its query) or stays on this server."""
    if not 300 <= response.status_code < 400:
        return
    parts = urlsplit(response.headers["Location"])
    if parts.scheme or parts.netloc:
        assert urlunsplit(parts._replace(query="", fragment="")) in registered, response.headers["Location"]
    else:
        assert parts.path in {"/login", "/oauth2/authorize"}, response.headers["Location"]


@pytest.fixture
def tokens(obtain_tokens, web_client) -> dict[str, Any]:
    """An access token, a refresh token and an ID Token of `web_client` for the signed-in user."""
    return obtain_tokens(web_client, scope=" ".join(USER_SCOPES))


# --- authorize ---------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), method=st.sampled_from(["GET", "POST"]))
def test_authorize_answers_without_5xx_or_a_foreign_redirect(signed_in, web_client, spa_client, data, method):
    target = data.draw(st.sampled_from([web_client, spa_client]))
    base = authorization_params(target, pkce=make_pkce(), state="s")
    pairs = data.draw(parameters(base))
    if method == "GET":
        response = signed_in.http.get(f"/oauth2/authorize?{encoded(pairs)}")
    else:
        response = signed_in.http.post("/oauth2/authorize", **body(pairs, data.draw(st.sampled_from(BODY_KINDS))))

    sent("authorize", response)
    assert_redirect_within(response, set(web_client.redirect_uris) | {SPA_REDIRECT_URI})


# --- token --------------------------------------------------------------------------------------------

def _credentials(data, web_client, machine_client, spa_client) -> tuple[dict[str, str], Pairs]:
    """Headers and body parameters that authenticate one way, several ways, or wrongly."""
    how = data.draw(st.sampled_from(["web", "machine", "public", "none", "odd-basic", "both"]))
    if how == "web":
        return basic(f"{web_client.client_id}:{web_client.secret}".encode()), []
    if how == "machine":
        return basic(f"{machine_client.client_id}:{machine_client.secret}".encode()), []
    if how == "public":
        return {}, [("client_id", spa_client.client_id)]
    if how == "odd-basic":
        return basic(data.draw(st.binary(max_size=40))), []
    if how == "both":
        return (basic(f"{machine_client.client_id}:{machine_client.secret}".encode()),
                [("client_secret", data.draw(odd_text))])
    return {}, []


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token", "client_credentials", "unknown"])
def test_token_answers_rfc_errors(client, authorize, web_client, machine_client, spa_client, tokens, grant, data):
    bases = {
        "client_credentials": lambda: {"grant_type": "client_credentials", "scope": "invoices:read"},
        "refresh_token": lambda: {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                  "scope": "openid"},
        "unknown": lambda: {"grant_type": data.draw(odd_text)},
    }
    if grant == "authorization_code":
        redirect = authorize(web_client)  # a fresh code, redeemable until an example redeems it
        base = {"grant_type": "authorization_code", "code": redirect.code, "redirect_uri": redirect.redirect_uri,
                "code_verifier": redirect.pkce.verifier}
    else:
        base = bases[grant]()
    headers, auth_pairs = _credentials(data, web_client, machine_client, spa_client)
    if data.draw(st.booleans()):
        headers["Origin"] = FOREIGN_ORIGIN
    pairs = data.draw(parameters(base)) + auth_pairs
    query = data.draw(st.one_of(st.just(""), parameters({"grant_type": grant}).map(lambda p: "?" + encoded(p))))

    response = client.post(f"/oauth2/token{query}", headers=headers,
                           **body(pairs, data.draw(st.sampled_from(BODY_KINDS))))

    sent(f"token:{grant}", response)
    answer = assert_json_answer(response)
    if response.status_code == 200:
        assert answer["token_type"] == "Bearer" and answer["access_token"]


# --- introspection and revocation ----------------------------------------------------------------

@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
def test_introspection_and_revocation_answer_rfc_errors(client, web_client, machine_client, spa_client, tokens,
                                                        path, data):
    token = data.draw(st.sampled_from([tokens["access_token"], tokens["refresh_token"], tokens["id_token"]]))
    headers, auth_pairs = _credentials(data, web_client, machine_client, spa_client)
    if data.draw(st.booleans()):
        headers["Origin"] = FOREIGN_ORIGIN
    pairs = data.draw(parameters({"token": token, "token_type_hint": "access_token"})) + auth_pairs

    response = client.post(path, headers=headers, **body(pairs, data.draw(st.sampled_from(BODY_KINDS))))

    sent(path.removeprefix("/oauth2/"), response)
    answer = assert_json_answer(response)
    if response.status_code == 200 and path == "/oauth2/introspect":
        assert isinstance(answer["active"], bool)


# --- UserInfo ----------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), method=st.sampled_from(["GET", "POST"]))
def test_userinfo_answers_rfc_errors(client, tokens, data, method):
    authorization = data.draw(st.one_of(
        st.just(f"Bearer {tokens['access_token']}"), st.just(f"Bearer {tokens['id_token']}"),
        header_text.map(lambda t: f"Bearer {t}"), header_text, st.just("")))
    pairs = data.draw(parameters({"access_token": tokens["access_token"]}))
    headers = {"Authorization": authorization} if authorization else {}
    if method == "GET":
        response = client.get(f"/oauth2/userinfo?{encoded(pairs)}", headers=headers)
    else:
        response = client.post("/oauth2/userinfo", headers=headers,
                               **body(pairs, data.draw(st.sampled_from(BODY_KINDS))))

    sent("userinfo", response)
    if response.status_code == 200:
        assert response.get_json()["sub"]
    elif response.status_code in {400, 401, 403}:
        assert_rfc_error_body(response)


# --- logout ---------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), method=st.sampled_from(["GET", "POST"]))
def test_logout_answers_without_5xx_or_a_foreign_redirect(signed_in, web_client, tokens, data, method):
    base = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": WEB_POST_LOGOUT_URI,
            "client_id": web_client.client_id, "state": "s"}
    pairs = data.draw(parameters(base))
    if method == "GET":
        response = signed_in.http.get(f"/oauth2/logout?{encoded(pairs)}")
    else:
        response = signed_in.http.post("/oauth2/logout", **body(pairs, data.draw(st.sampled_from(BODY_KINDS))))

    sent("logout", response)
    assert_redirect_within(response, {WEB_POST_LOGOUT_URI})
