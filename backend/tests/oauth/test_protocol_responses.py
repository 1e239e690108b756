"""What a client sees of the busiest protocol endpoints: the headers, errors and bodies of the token
endpoint's client-credentials answers, introspection and JWKS, through the one request path."""

from __future__ import annotations

import atexit
import io
import logging
import re
import shutil
import tempfile
from dataclasses import replace

import pytest

from app import create_app
from app.services.keys import rotate_key
from tests.conftest import make_settings, signing_keys_dir
from tests.oauth.conftest import MACHINE_SCOPES
from tests.oauth.helpers import verify_jwt

FORM = "application/x-www-form-urlencoded"
# The rotation test's own keyring: the run's shared one must not gain a key.
ROTATION_KEYS_DIR = tempfile.mkdtemp(prefix="gatehouse-test-rotation-keys-")
atexit.register(shutil.rmtree, ROTATION_KEYS_DIR, ignore_errors=True)


def cc_form(registered, **form: str) -> dict:
    return registered.authenticate({"grant_type": "client_credentials", **form})


def assert_json_security_headers(response) -> None:
    """Every answer: its request id, no sniffing of its media type (nothing renders JSON as a page), no
    framing, no Referer, a policy that loads nothing; each header once (a second copy, conflicting or
    not, is the proxy's or the browser's guess which to believe)."""
    [request_id] = response.headers.getlist("X-Request-ID")
    assert re.fullmatch(r"[0-9a-f-]{36}", request_id)
    assert [response.headers.getlist(name) for name in (
        "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy")] == [
        ["nosniff"], ["DENY"], ["no-referrer"], ["default-src 'none'; frame-ancestors 'none'"]]


def test_client_credentials_token_response(client, machine_client):
    """RFC 6749 §4.4.3 / §5.1: a JSON token response that no cache keeps (Cache-Control: no-store,
    Pragma: no-cache); Vary: Origin, since a CORS request gets Access-Control-Allow-Origin; the token
    verifies against the JWKS."""
    response = client.post("/oauth2/token", **cc_form(machine_client, scope="invoices:read"))

    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers.getlist("Cache-Control") == ["no-store"]
    assert response.headers["Pragma"] == "no-cache"
    assert response.headers["Vary"] == "Origin"
    assert_json_security_headers(response)
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer" and body["scope"] == "invoices:read"
    assert verify_jwt(client, body["access_token"]).claims["sub"] == machine_client.client_id


def test_client_authentication_failure_is_401_with_a_challenge(client, machine_client):
    """RFC 6749 §5.2: invalid_client is 401 with a WWW-Authenticate challenge of the scheme the client used."""
    response = client.post("/oauth2/token", **cc_form(replace(machine_client, secret="not-the-secret")))

    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.headers.getlist("Cache-Control") == ["no-store"]
    assert_json_security_headers(response)


def test_introspection_response(client, machine_client):
    """RFC 7662 §2.2: the token's claims with active: true; introspection has no CORS, so no Vary."""
    token = client.post("/oauth2/token", **cc_form(machine_client)).get_json()["access_token"]
    response = client.post("/oauth2/introspect", **machine_client.authenticate({"token": token}))

    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["active"] is True and body["scope"] == " ".join(MACHINE_SCOPES)
    assert body["client_id"] == machine_client.client_id and body["token_type"] == "Bearer"
    assert "Vary" not in response.headers
    assert_json_security_headers(response)


@pytest.mark.parametrize(("content_type", "body", "query", "status", "answer"), [
    (f"{FORM}; charset=utf-8", b"grant_type=client_credentials", "", 200, {"scope": " ".join(MACHINE_SCOPES)}),
    ("Application/X-WWW-Form-Urlencoded", b"grant_type=client_credentials", "", 200,
     {"scope": " ".join(MACHINE_SCOPES)}),
    (FORM, b"grant_type=client_credentials&scope=", "", 200, {"scope": " ".join(MACHINE_SCOPES)}),
    (FORM, b"grant_type=client_credentials&scope=%ZZ", "", 400, {"error": "invalid_scope"}),
    (FORM, b"grant_type=client_credentials&scope=%FF", "", 400, {"error": "invalid_scope"}),
    (FORM, b"grant_type=client_credentials&scope=invoices%3Aread&scope=invoices%3Aread", "", 400,
     {"error": "invalid_request"}),
    # Werkzeug reads a form that is not UTF-8 as empty: no grant_type.
    (FORM, b"grant_type=client_credentials&scope=\xff", "", 400, {"error": "invalid_request"}),
    # The query string is not where the token endpoint's parameters go (RFC 6749 §3.2): ignored.
    (FORM, b"grant_type=client_credentials", "?scope=invoices:read", 200, {"scope": " ".join(MACHINE_SCOPES)}),
    ("application/json", b'{"grant_type": "client_credentials"}', "", 400, {"error": "invalid_request"}),
    ("text/plain", b"grant_type=client_credentials", "", 400, {"error": "invalid_request"}),
], ids=["charset parameter", "media type in capitals", "blank scope", "bad percent-encoding",
        "percent-encoded non-UTF-8", "repeated scope", "not UTF-8", "query string", "JSON", "form as text/plain"])
def test_token_forms_are_read_as_form_bodies(client, machine_client, content_type, body, query, status, answer):
    """RFC 6749 §3.2 and §4.4.2: parameters come form-encoded in the body, once each."""
    response = client.post(f"/oauth2/token{query}", data=body, content_type=content_type,
                           auth=(machine_client.client_id, machine_client.secret))

    assert response.status_code == status, response.get_data(as_text=True)
    assert answer.items() <= response.get_json().items()
    assert response.headers.getlist("Cache-Control") == ["no-store"]


@pytest.mark.parametrize(("body", "status", "answer"), [
    (b"token=\xff", 400, {"error": "invalid_request"}),
    (b"token=a&token=b", 400, {"error": "invalid_request"}),
    (b"token=&token_type_hint=refresh_token", 200, {"active": False}),
], ids=["not UTF-8", "repeated token", "blank token"])
def test_introspection_forms(client, machine_client, body, status, answer):
    """RFC 7662 §2.1 and §4: a request without a token (Werkzeug reads a form that is not UTF-8 as
    empty), or with one repeated, is invalid_request; a blank token is no token of ours."""
    response = client.post("/oauth2/introspect", data=body, content_type=FORM,
                           auth=(machine_client.client_id, machine_client.secret))

    assert response.status_code == status and answer.items() <= response.get_json().items()


def test_a_host_outside_trusted_hosts_is_refused(app, client, machine_client):
    """With TRUSTED_HOSTS set, any other Host is a 400 before the token endpoint runs."""
    app.config["TRUSTED_HOSTS"] = ["gatehouse.example"]
    try:
        untrusted = client.post("/oauth2/token", **cc_form(machine_client), base_url="https://attacker.example")
        trusted = client.post("/oauth2/token", **cc_form(machine_client), base_url="https://gatehouse.example")
    finally:
        app.config["TRUSTED_HOSTS"] = None
    assert untrusted.status_code == 400
    assert trusted.status_code == 200


def test_jwks_response(client, app):
    """RFC 7517 §5: the published key set, public keys only; relying parties may cache it five minutes."""
    response = client.get("/oauth2/jwks")

    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers.getlist("Cache-Control") == ["public, max-age=300"]
    assert response.headers["Vary"] == "Origin"
    assert_json_security_headers(response)
    assert response.get_json() == app.extensions["gatehouse.keys"].jwks()
    assert all("d" not in key for key in response.get_json()["keys"])


def test_https_answers_carry_hsts_in_production(database_url):
    """Over https in production every answer sends Strict-Transport-Security (RFC 6797 §7.1): directly
    or behind a proxy that says so (X-Forwarded-Proto); never over plain http (§7.2)."""
    production = create_app(make_settings(
        database_url, ENV="production", ISSUER="https://id.example.test", SIGNING_KEYS_DIR=signing_keys_dir(),
        # Never connected to: JWKS reads neither.
        DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none", REDIS_URL="redis://127.0.0.1:9/0",
        MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", MAIL_FROM="Gatehouse <no-reply@id.example.test>",
        CORS_EXTRA_ORIGINS="https://spa.example.test"))
    client = production.test_client()

    direct = client.get("/oauth2/jwks", base_url="https://id.example.test")
    proxied = client.get("/oauth2/jwks", headers={"X-Forwarded-Proto": "https"})
    cors = client.get("/oauth2/jwks", base_url="https://id.example.test", headers={"Origin": "https://spa.example.test"})
    plain = client.get("/oauth2/jwks")

    for response in (direct, proxied, cors):
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert cors.headers["Access-Control-Allow-Origin"] == "https://spa.example.test"
    assert "Strict-Transport-Security" not in plain.headers


def test_other_grants_are_answered_by_their_own_rules(client, token_request, machine_client, web_client):
    """An unknown grant type is unsupported_grant_type (RFC 6749 §5.2); an unknown refresh token invalid_grant."""
    response = client.post("/oauth2/token", **machine_client.authenticate({"grant_type": "urn:example:unknown"}))
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"

    refresh = token_request(web_client, grant_type="refresh_token", refresh_token="unknown")
    assert refresh.get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"])
def test_a_body_over_the_limit_is_refused(client, machine_client, path):
    """MAX_CONTENT_LENGTH applies to the protocol endpoints: 413, not a 500, with RFC 6749 §5.2's
    invalid_request in a JSON body a client can read (not Werkzeug's HTML page), never cached."""
    response = client.post(path, **cc_form(machine_client, scope="x" * (1024 * 1024 + 1)))
    assert response.status_code == 413
    assert response.mimetype == "application/json"
    assert response.get_json() == {"error": "invalid_request", "error_description": "The request body is too large."}
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("method", "path", "allow", "accepted"), [
    ("GET", "/oauth2/token", "OPTIONS, POST", "POST"),
    ("PUT", "/oauth2/introspect", "POST", "POST"),
    ("GET", "/oauth2/revoke", "OPTIONS, POST", "POST"),
    ("DELETE", "/oauth2/userinfo", "GET, HEAD, OPTIONS, POST", "GET, POST"),
    ("POST", "/oauth2/jwks", "GET, HEAD, OPTIONS", "GET"),
    ("POST", "/.well-known/openid-configuration", "GET, HEAD", "GET"),
])
def test_a_method_the_endpoint_does_not_take_is_refused_in_json(client, method, path, allow, accepted):
    """RFC 6749 §3.2: the token endpoint takes POST (RFC 7662 §2.1 and RFC 7009 §2.1 likewise). Another
    method is a malformed request: §5.2's invalid_request in JSON a client can read, with HTTP's 405 and
    the Allow header it requires (RFC 9110 §15.5.6), never cached; not Werkzeug's HTML page."""
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert response.get_json() == {"error": "invalid_request",
                                   "error_description": f"This endpoint accepts {accepted} only."}
    assert response.headers["Allow"] == allow
    assert response.headers["Cache-Control"] == "no-store"
    assert_json_security_headers(response)


@pytest.mark.parametrize("path", ["/oauth2/authorize", "/oauth2/logout"])
def test_a_method_the_browser_endpoints_do_not_take_is_an_error_page(client, path):
    """The browser's endpoints answer it on a page, like every page of the site."""
    response = client.put(path)
    assert response.status_code == 405
    assert response.mimetype == "text/html"
    assert {method.strip() for method in response.headers["Allow"].split(",")} == {"GET", "HEAD", "POST"}


def test_a_consent_form_over_the_limit_is_an_error_page(client):
    """The browser's endpoints answer the same refusal on a page: no client or redirect URI is known yet."""
    response = client.post("/oauth2/authorize", data={"decision": "x" * (1024 * 1024 + 1)})
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert "invalid_request" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/oauth2/jwks", "/oauth2/token", "/oauth2/introspect"])
def test_request_ids_are_echoed_or_made(client, path):
    method = "GET" if path == "/oauth2/jwks" else "POST"
    echoed = client.open(path, method=method, headers={"X-Request-ID": "trace-abcdef12"})
    assert echoed.headers["X-Request-ID"] == "trace-abcdef12"
    made = client.open(path, method=method, headers={"X-Request-ID": "bad id; with spaces"})
    assert re.fullmatch(r"[0-9a-f-]{36}", made.headers["X-Request-ID"])
    assert client.open(path, method=method).headers["X-Request-ID"] != made.headers["X-Request-ID"]


def test_an_unexpected_error_is_logged_with_the_request_id_and_answered_500(client, app, machine_client,
                                                                             monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(app.extensions["gatehouse.oauth"], "create_token_response", broken)
    with caplog.at_level(logging.ERROR):
        response = client.post("/oauth2/token", headers={"X-Request-ID": "trace-500-abcdef"},
                               **cc_form(machine_client))

    assert response.status_code == 500
    assert response.data == b"Internal Server Error"
    assert response.headers["X-Request-ID"] == "trace-500-abcdef"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.request_id == "trace-500-abcdef" and record.exc_info
    assert machine_client.secret not in caplog.text


@pytest.mark.settings(SIGNING_KEYS_DIR=ROTATION_KEYS_DIR)
def test_jwks_publishes_a_rotated_key_at_once(client, settings):
    """A key made by `flask keys rotate` is published (long before it signs) on the next JWKS request."""
    before = {key["kid"] for key in client.get("/oauth2/jwks").get_json()["keys"]}
    new = rotate_key(settings.SIGNING_KEYS_DIR, alg="RS256", activation_delay=600)

    after = {key["kid"] for key in client.get("/oauth2/jwks").get_json()["keys"]}
    assert after == before | {new.kid}


def test_a_chunked_body_is_read(client, machine_client):
    """A body of unknown length is read within MAX_CONTENT_LENGTH, and the token request answered."""
    body = f"grant_type=client_credentials&client_id={machine_client.client_id}".encode()
    response = client.post("/oauth2/token", input_stream=io.BytesIO(body), auth=(machine_client.client_id,
                                                                               machine_client.secret),
                           headers={"Transfer-Encoding": "chunked", "Content-Type": FORM},
                           # As a server that has de-chunked the body says (PEP 3333's wsgi.input_terminated).
                           environ_overrides={"wsgi.input_terminated": True})

    assert response.status_code == 200 and "access_token" in response.get_json()
