"""Request rules every protocol endpoint shares: one value per parameter, one way to authenticate the
client, credentials the server can read, and the OIDC request parameters Gatehouse does not support.
Each is a clear OAuth error, never a parameter silently chosen or dropped, never a 500."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from app.models import AuthorizationCode, OAuthClient
from app.services import clients
from app.services.actor import Actor
from tests.oauth.helpers import SPA_REDIRECT_URI, authorization_params
from tests.oauth.test_authorize import assert_error_page, count, error_redirect

FOREIGN_ORIGIN = "https://not-a-client.example"
# A cross-origin request (an Origin no client registered) goes through the CORS check: the same rules apply.
BOTH_PATHS = pytest.mark.parametrize("headers", [{}, {"Origin": FOREIGN_ORIGIN}], ids=["no-origin", "origin"])


def invalid_request(response) -> str:
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["error"] == "invalid_request"
    return body["error_description"]


# --- the token endpoint (RFC 6749 §3.2, §5.2) -------------------------------------------------

@BOTH_PATHS
@pytest.mark.parametrize("form", [
    "grant_type=client_credentials&scope=invoices:read&scope=invoices:write",
    "grant_type=client_credentials&grant_type=authorization_code",
], ids=["scope-twice", "grant_type-twice"])
def test_a_repeated_token_parameter_is_invalid_request(client, machine_client, headers, form):
    """RFC 6749 §3.2: parameters MUST NOT be included more than once; §5.2: invalid_request. Taking the
    first value would let two parts of a stack read two different requests."""
    response = client.post("/oauth2/token", data=form, content_type="application/x-www-form-urlencoded",
                           headers=headers, auth=(machine_client.client_id, machine_client.secret))
    assert "sent more than once" in invalid_request(response)
    assert "access_token" not in response.get_json()


def test_a_token_request_without_grant_type_is_invalid_request(client, machine_client):
    """RFC 6749 §5.2: a missing required parameter is invalid_request (unsupported_grant_type is for a
    grant type the server does not know)."""
    response = client.post("/oauth2/token", auth=(machine_client.client_id, machine_client.secret),
                           data={"scope": "invoices:read"})
    assert invalid_request(response) == "The grant_type parameter is required."


@BOTH_PATHS
def test_the_token_endpoint_reads_no_parameter_from_the_query(client, machine_client, headers):
    """RFC 6749 §3.2 and §4.4.2: the client POSTs its parameters in the form body; a query string's
    are not the request's (issue 12, finding 10: `?grant_type=` chose the grant)."""
    response = client.post("/oauth2/token?grant_type=client_credentials&scope=invoices:read", data={},
                           content_type="application/x-www-form-urlencoded", headers=headers,
                           auth=(machine_client.client_id, machine_client.secret))
    assert invalid_request(response) == "The grant_type parameter is required."


@BOTH_PATHS
@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"])
@pytest.mark.parametrize("body", ["multipart", "json"])
def test_a_body_that_is_not_form_encoded_is_invalid_request(client, machine_client, headers, path, body):
    """RFC 6749 §3.2 / §4.4.2, RFC 7662 §2.1, RFC 7009 §2.1: parameters are sent application/x-www-form-urlencoded
    (issue 12, finding 10: a multipart body was read as a form)."""
    form = {"grant_type": "client_credentials", "token": "anything"}
    kwargs = {"json": form} if body == "json" else {"data": form, "content_type": "multipart/form-data"}
    response = client.post(path, headers=headers, auth=(machine_client.client_id, machine_client.secret), **kwargs)
    assert invalid_request(response) == "Send the parameters in an application/x-www-form-urlencoded body."


ASSERTION = {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
             "client_assertion": "a.b.c"}


@pytest.mark.parametrize("basic, form, named", [
    (True, {"client_secret": "SECRET"}, "HTTP Basic and client_secret"),
    (True, ASSERTION, "HTTP Basic and client_assertion"),
    (False, {"client_secret": "SECRET", **ASSERTION}, "client_secret and client_assertion"),
], ids=["basic+secret", "basic+assertion", "secret+assertion"])
@BOTH_PATHS
def test_credentials_sent_two_ways_are_invalid_request(client, machine_client, headers, basic, form, named):
    """RFC 6749 §2.3: one authentication method per request; §5.2: multiple credentials are invalid_request."""
    form = {key: machine_client.secret if value == "SECRET" else value for key, value in form.items()}
    response = client.post("/oauth2/token", headers=headers,
                           auth=(machine_client.client_id, machine_client.secret) if basic else None,
                           data={"grant_type": "client_credentials", "client_id": machine_client.client_id, **form})
    assert invalid_request(response) == f"Authenticate the client one way only, not with {named}."


@pytest.mark.parametrize("path, form", [
    ("/oauth2/token", {"grant_type": "client_credentials"}),
    ("/oauth2/introspect", {"token": "anything"}),
    ("/oauth2/revoke", {"token": "anything"}),
])
@BOTH_PATHS
def test_basic_credentials_that_are_not_utf8_are_invalid_client(client, path, form, headers):
    """RFC 6749 §2.3.1, §5.2: credentials the server cannot read fail client authentication: 401
    invalid_client with a Basic challenge, as for a wrong secret (RFC 7662 §2.3, RFC 7009 §2.2.1)."""
    undecodable = base64.b64encode(b"\xff\xfe:\xff").decode()
    response = client.post(path, data=form, headers={**headers, "Authorization": f"Basic {undecodable}"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


@BOTH_PATHS
@pytest.mark.parametrize("authorization", ["Basic ", "Basic \t "])
def test_empty_basic_credentials_are_invalid_client(client, headers, authorization):
    """RFC 6749 §5.2: failed client authentication is invalid_client, 401 (found by tests/fuzz)."""
    response = client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                           headers={**headers, "Authorization": authorization})

    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_a_form_over_the_part_limit_is_413(client, machine_client):
    """A form Werkzeug refuses to parse (over its part limit) is 413, not a 500."""
    data = {"grant_type": "client_credentials", **{f"p{i}": "x" for i in range(1100)}}
    auth = (machine_client.client_id, machine_client.secret)
    response = client.post("/oauth2/token", data=data, content_type="multipart/form-data", auth=auth)
    assert response.status_code == 413
    assert response.get_json()["error"] == "invalid_request"  # RFC 6749 §5.2


# --- introspection and revocation (RFC 7662 §2.1, RFC 7009 §2.1) ------------------------------

@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
def test_a_repeated_token_is_invalid_request(client, machine_client, path):
    """RFC 6749 §3.1 (which RFC 7662 §2.1 and RFC 7009 §2.1 build on): one `token`. With two, the
    answer would otherwise depend on their order."""
    token = client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                        auth=(machine_client.client_id, machine_client.secret)).get_json()["access_token"]
    response = client.post(path, data=f"token={token}&token=garbage", content_type="application/x-www-form-urlencoded",
                           auth=(machine_client.client_id, machine_client.secret))
    assert invalid_request(response) == "Parameters sent more than once: token."


# --- the authorization endpoint -----------------------------------------------------------------

@pytest.mark.parametrize("parameter, value, error", [
    ("request", "eyJhbGciOiJub25lIn0.e30.", "request_not_supported"),
    ("request_uri", "https://rp.example.com/request.jwt", "request_uri_not_supported"),
    ("registration", "{}", "registration_not_supported"),
])
def test_unsupported_oidc_request_parameters_are_refused(signed_in, web_client, pkce, db_session, parameter, value,
                                                          error):
    """OIDC Core §6.1, §6.2, §7.2.1 (errors of §3.1.2.6): discovery advertises no request objects, no
    request_uri and no registration, so a request using one gets that error, with state, and no code:
    what the client put only there (a nonce, max_age, claims) must not be silently dropped."""
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), **{parameter: value}))
    params = error_redirect(response, web_client.redirect_uri)
    assert (params["error"], params["state"]) == (error, "state-xyz")
    assert count(db_session, AuthorizationCode) == 0


def test_a_missing_response_type_is_redirected_as_invalid_request(signed_in, web_client, pkce, db_session):
    """RFC 6749 §4.1.2.1: a missing required parameter is invalid_request (unsupported_response_type is
    for a response type the server does not offer), redirected with state to a valid redirect URI."""
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), response_type=None))
    params = error_redirect(response, web_client.redirect_uri)
    assert (params["error"], params["state"]) == ("invalid_request", "state-xyz")
    assert params["error_description"] == "The response_type parameter is required."
    assert count(db_session, AuthorizationCode) == 0


def test_an_oidc_request_without_redirect_uri_gets_the_error_page(signed_in, spa_client, pkce, db_session):
    """OIDC Core §3.1.2.1: redirect_uri is REQUIRED in an OpenID Connect request, even from a client with
    one registered URI; RFC 6749 §4.1.2.1: a missing redirect URI is shown, never redirected."""
    response = signed_in.authorize(authorization_params(spa_client, pkce=pkce(), redirect_uri=None))
    assert_error_page(response)
    assert count(db_session, AuthorizationCode) == 0


def test_an_oauth_request_without_redirect_uri_is_redeemed_without_one(authorize, exchange, spa_client,
                                                                       db_session):
    """RFC 6749 §3.1.2.3: a plain OAuth request from a client with one registered URI may leave
    redirect_uri out, and is answered there; §4.1.3: the token request then leaves it out too."""
    redirect = authorize(spa_client, scope="profile", redirect_uri=None)
    assert redirect.location.startswith(SPA_REDIRECT_URI + "?")
    assert db_session.scalar(select(AuthorizationCode.redirect_uri)) is None

    response = exchange(redirect)
    assert response.status_code == 200, response.get_json()
    assert "access_token" in response.get_json()


def test_a_redirect_uri_named_in_the_request_must_be_repeated_at_the_token_endpoint(authorize, exchange,
                                                                                    spa_client):
    """RFC 6749 §4.1.3: "required, if the redirect_uri parameter was included in the authorization request"."""
    redirect = authorize(spa_client, scope="profile")
    response = exchange(redirect, redirect_uri=None)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize("parameter", ["nonce", "prompt", "scope", "state", "response_type"])
def test_a_repeated_authorization_parameter_is_redirected_as_invalid_request(signed_in, web_client, pkce,
                                                                              db_session, parameter):
    """RFC 6749 §3.1: parameters MUST NOT be included more than once; §4.1.2.1: with a valid redirect
    URI, invalid_request goes back to the client (not to an error page, as Authlib's own check did)."""
    params = authorization_params(web_client, pkce=pkce(), prompt="consent")
    query = "&".join(f"{k}={v}" for k, v in params.items()) + f"&{parameter}={params[parameter]}"
    response = signed_in.http.get(f"/oauth2/authorize?{query}")
    redirected = error_redirect(response, web_client.redirect_uri)
    assert redirected["error"] == "invalid_request"
    assert redirected["error_description"] == f"Parameters sent more than once: {parameter}."
    assert count(db_session, AuthorizationCode) == 0


def test_a_nonce_longer_than_the_server_keeps_is_invalid_request(signed_in, web_client, pkce, db_session):
    """OIDC Core §3.1.2.6 / RFC 6749 §4.1.2.1: a nonce over 255 characters is refused back to the
    client, not stored (the column holds 255; PostgreSQL would refuse the row: a 500)."""
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), nonce="n" * 256))
    params = error_redirect(response, web_client.redirect_uri)
    assert (params["error"], params["error_description"]) == ("invalid_request",
                                                              "nonce may be at most 255 characters long.")
    assert count(db_session, AuthorizationCode) == 0


# --- UserInfo (OIDC Core §5.3, RFC 6750 §3.1) ------------------------------------------------

def test_userinfo_refuses_a_token_of_a_deleted_client(obtain_tokens, web_client, bearer, db_session):
    """A deleted client's tokens get invalid_token from UserInfo (RFC 6750 §3.1), not a 500."""
    tokens = obtain_tokens(web_client, scope="openid profile")
    row = db_session.scalar(select(OAuthClient).where(OAuthClient.client_id == web_client.client_id))
    clients.delete_client(db_session, actor=Actor(user=None), client=row)
    db_session.commit()

    response = bearer("/oauth2/userinfo", tokens["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("first_is_registered", [True, False], ids=["registered-first", "foreign-first"])
def test_a_repeated_redirect_uri_never_sends_the_user_to_an_unregistered_one(signed_in, web_client, pkce, db_session,
                                                                             first_is_registered):
    """RFC 6749 §4.1.2.1, RFC 9700 §4.1.3: an error goes only to a URI the client registered, whichever
    of two redirect_uri values comes first; otherwise the user gets the error page."""
    params = authorization_params(web_client, pkce=pkce(), redirect_uri=None)
    uris = [web_client.redirect_uri, "https://evil.example.net/cb"]
    if not first_is_registered:
        uris.reverse()
    query = "&".join(f"{k}={v}" for k, v in params.items()) + "".join(f"&redirect_uri={uri}" for uri in uris)
    response = signed_in.http.get(f"/oauth2/authorize?{query}")
    if first_is_registered:
        assert error_redirect(response, web_client.redirect_uri)["error"] == "invalid_request"
    else:
        assert_error_page(response)
    assert count(db_session, AuthorizationCode) == 0


@pytest.mark.parametrize("parameter, value, description", [
    ("response_mode", "form_post", "response_mode must be one of: query."),
    ("response_mode", "fragment", "response_mode must be one of: query."),
    ("max_age", "-1", "max_age must be a whole number of seconds."),
    ("max_age", "abc", "max_age must be a whole number of seconds."),
    ("max_age", "\u00b2", "max_age must be a whole number of seconds."),
])
def test_a_value_the_server_cannot_honour_is_invalid_request(signed_in, web_client, pkce, db_session, parameter,
                                                             value, description):
    """RFC 6749 §4.1.2.1: an invalid parameter value is invalid_request, sent back to the client, rather
    than a code issued as if the parameter had not been sent: discovery offers response_mode query
    only, and max_age is a number of seconds (OIDC Core §3.1.2.1)."""
    response = signed_in.authorize(authorization_params(web_client, pkce=pkce(), **{parameter: value}))
    params = error_redirect(response, web_client.redirect_uri)
    assert (params["error"], params["error_description"]) == ("invalid_request", description)
    assert count(db_session, AuthorizationCode) == 0


def test_response_mode_query_is_accepted(authorize, web_client):
    assert authorize(web_client, response_mode="query").code


# --- input quoted in an error (RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E) -----

def assert_description_characters(description: str) -> None:
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description), description


@pytest.mark.parametrize("redirect_uri", ["https://app.test\\@evil.test/cb", 'https://rp.example.com/"cb',
                                          "https://rp.example.com/café", "https://rp.example.com/\x7f"],
                         ids=["backslash", "quote", "non-ascii", "del"])
def test_an_unregistered_redirect_uri_with_any_character_shows_the_error_page(browser, web_client, pkce, redirect_uri):
    """Finding 1: Authlib's message quoted the URI as it came, and refused to build it: a 500."""
    response = browser.authorize(authorization_params(web_client, pkce=pkce(), redirect_uri=redirect_uri))

    assert_error_page(response)
    assert "is not registered for the client" in response.get_data(as_text=True)


@pytest.mark.parametrize("response_type", ['co"de', "code\\", "códe", "code\x7f"])
def test_an_unsupported_response_type_with_any_character_is_redirected(signed_in, web_client, pkce, response_type):
    params = error_redirect(signed_in.authorize(authorization_params(web_client, pkce=pkce(),
                                                                      response_type=response_type)),
                            web_client.redirect_uris[0])

    assert params["error"] == "unsupported_response_type"
    assert_description_characters(params["error_description"])


@BOTH_PATHS
@pytest.mark.parametrize("form", [
    {"grant_type": "client_credentials", "scope": "café"},
    {"grant_type": "client_credentials", "scope": 'in"voices \\ \x7f'},
    {"grant_type": "cliént_credentials"},
    {"grant_type": "client_credentials", "scope": "a", "sc\\ope": "1", "sc\\ope ": "2"},
], ids=["scope-non-ascii", "scope-quote-backslash-del", "grant_type", "names"])
def test_a_token_error_quoting_any_character_keeps_to_the_rfc_characters(client, machine_client, headers, form):
    """Finding 1: `scope=caf%C3%A9` with client credentials was a 500."""
    response = client.post("/oauth2/token", data=form, headers=headers,
                           auth=(machine_client.client_id, machine_client.secret))

    assert response.status_code == 400
    assert response.get_json()["error"] in {"invalid_scope", "unsupported_grant_type", "invalid_request"}
    assert_description_characters(response.get_json().get("error_description", ""))
