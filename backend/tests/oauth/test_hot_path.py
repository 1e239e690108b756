"""oauth/hot_path.py: client-credentials tokens, introspection and JWKS served in front of Flask's
request cycle must answer exactly as the Flask views do, and hand everything else to Flask intact.

A request with an Origin header always goes to Flask (its CORS check reads the client registry),
so an Origin that no client registered gives the Flask view's answer to the same request. Flask's
answers carry a per-request CSP nonce (Talisman's, for the pages' inline styles); the hot path's
do not, which is how these tests tell the two paths apart.
"""

from __future__ import annotations

import atexit
import io
import logging
import re
import shutil
import tempfile
import time
from dataclasses import replace

import pytest

from app import create_app
from app.oauth import hot_path
from app.services.keys import rotate_key
from tests.conftest import make_settings, signing_keys_dir
from tests.oauth.conftest import MACHINE_SCOPES
from tests.oauth.helpers import verify_jwt

FOREIGN_ORIGIN = "https://not-a-client.example"
PER_REQUEST = {"X-Request-ID", "Content-Length"}
# The rotation test's own keyring: the run's shared one must not gain a key.
ROTATION_KEYS_DIR = tempfile.mkdtemp(prefix="gatehouse-test-rotation-keys-")
atexit.register(shutil.rmtree, ROTATION_KEYS_DIR, ignore_errors=True)


def served_by_flask(response) -> bool:
    return "'nonce-" in response.headers["Content-Security-Policy"]


def comparable_headers(response) -> list[tuple[str, str]]:
    """Every header with its value, repeats included (a second Cache-Control must not hide), less the
    per-request ones, and the CSP without Flask's nonce."""
    return sorted((name, re.sub(r" 'nonce-[^']+'", "", value) if name == "Content-Security-Policy" else value)
                  for name, value in response.headers.items() if name not in PER_REQUEST)


def cc_form(registered, **form: str) -> dict:
    return registered.authenticate({"grant_type": "client_credentials", **form})


def test_client_credentials_token_from_the_hot_path_matches_flask(client, machine_client):
    """RFC 6749 §4.4.3 / §5.1: the same token response (Cache-Control: no-store, Pragma: no-cache)
    and the same security headers on both paths; the token verifies against the JWKS."""
    hot = client.post("/oauth2/token", **cc_form(machine_client, scope="invoices:read"))
    flask = client.post("/oauth2/token", headers={"Origin": FOREIGN_ORIGIN},
                        **cc_form(machine_client, scope="invoices:read"))

    assert not served_by_flask(hot) and served_by_flask(flask)
    assert hot.status_code == flask.status_code == 200
    assert comparable_headers(hot) == comparable_headers(flask)
    assert hot.headers["Cache-Control"] == "no-store" and hot.headers["Vary"] == "Origin"
    assert set(hot.get_json()) == set(flask.get_json()) == {"access_token", "token_type", "expires_in", "scope"}
    assert verify_jwt(client, hot.get_json()["access_token"]).claims["sub"] == machine_client.client_id


def test_client_authentication_failure_from_the_hot_path_matches_flask(client, machine_client):
    """RFC 6749 §5.2: invalid_client is 401 with a WWW-Authenticate challenge, on both paths."""
    wrong = replace(machine_client, secret="not-the-secret")
    hot = client.post("/oauth2/token", **cc_form(wrong))
    flask = client.post("/oauth2/token", headers={"Origin": FOREIGN_ORIGIN}, **cc_form(wrong))

    assert not served_by_flask(hot) and served_by_flask(flask)
    assert hot.status_code == flask.status_code == 401
    assert hot.get_json() == flask.get_json() and hot.get_json()["error"] == "invalid_client"
    assert comparable_headers(hot) == comparable_headers(flask)
    assert hot.headers["WWW-Authenticate"].startswith("Basic")


def test_introspection_from_the_hot_path_matches_flask(client, machine_client):
    """RFC 7662 §2.2: the same introspection response on both paths."""
    token = client.post("/oauth2/token", **cc_form(machine_client)).get_json()["access_token"]
    form = machine_client.authenticate({"token": token})
    hot = client.post("/oauth2/introspect", **form)
    flask = client.post("/oauth2/introspect", headers={"Origin": FOREIGN_ORIGIN},
                        **machine_client.authenticate({"token": token}))

    assert not served_by_flask(hot) and served_by_flask(flask)
    assert hot.status_code == flask.status_code == 200
    assert hot.get_json() == flask.get_json()
    assert hot.get_json()["active"] is True and hot.get_json()["scope"] == " ".join(MACHINE_SCOPES)
    assert comparable_headers(hot) == comparable_headers(flask)
    assert "Vary" not in hot.headers  # introspection has no CORS


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(("content_type", "body", "query", "served_here"), [
    (f"{FORM}; charset=utf-8", b"grant_type=client_credentials", "", True),
    ("Application/X-WWW-Form-Urlencoded", b"grant_type=client_credentials", "", True),
    (FORM, b"grant_type=client_credentials&scope=", "", True),
    (FORM, b"grant_type=client_credentials&scope=%ZZ", "", True),
    # Percent-encoded bytes that are not UTF-8 stay percent-encoded, as Werkzeug leaves them.
    (FORM, b"grant_type=client_credentials&scope=%FF", "", True),
    (FORM, b"grant_type=client_credentials&scope=invoices%3Aread&scope=invoices%3Aread", "", True),
    # Werkzeug reads a form that is not UTF-8 as empty: no grant_type, which only Flask answers.
    (FORM, b"grant_type=client_credentials&scope=\xff", "", False),
    (FORM, b"grant_type=client_credentials", "?scope=invoices:read", False),
    ("application/json", b'{"grant_type": "client_credentials"}', "", False),
    # A form sent under another media type is no form to Werkzeug: no grant_type.
    ("text/plain", b"grant_type=client_credentials", "", False),
], ids=["charset parameter", "media type in capitals", "blank scope", "bad percent-encoding",
        "percent-encoded non-UTF-8", "repeated scope", "not UTF-8", "query string", "JSON", "form as text/plain"])
def test_any_token_form_gets_the_answer_flask_gives(client, machine_client, content_type, body, query,
                                                    served_here):
    """The hot path parses a form as Werkzeug does (RFC 6749 §3.2: form-encoded), or leaves it to Flask."""
    def post(headers):
        return client.post(f"/oauth2/token{query}", data=body, content_type=content_type,
                           auth=(machine_client.client_id, machine_client.secret), headers=headers)
    hot, flask = post({}), post({"Origin": FOREIGN_ORIGIN})

    assert served_by_flask(hot) is not served_here and served_by_flask(flask)
    assert hot.status_code == flask.status_code
    if hot.status_code == 200:
        assert set(hot.get_json()) == set(flask.get_json()) and hot.get_json()["scope"] == flask.get_json()["scope"]
    else:
        assert hot.get_json() == flask.get_json()
    assert comparable_headers(hot) == comparable_headers(flask)


@pytest.mark.parametrize(("body", "status", "answer"), [
    (b"token=\xff", 400, {"error": "invalid_request"}),
    (b"token=a&token=b", 400, {"error": "invalid_request"}),
    (b"token=&token_type_hint=refresh_token", 200, {"active": False}),
], ids=["not UTF-8", "repeated token", "blank token"])
def test_any_introspection_form_gets_the_answer_flask_gives(client, machine_client, body, status, answer):
    """RFC 7662 §2.1 and §4: a request without a token (Werkzeug reads a form that is not UTF-8 as
    empty), or with one repeated, is invalid_request; a blank token is no token of ours."""
    def post(headers):
        return client.post("/oauth2/introspect", data=body, content_type=FORM,
                           auth=(machine_client.client_id, machine_client.secret), headers=headers)
    hot, flask = post({}), post({"Origin": FOREIGN_ORIGIN})

    assert not served_by_flask(hot) and served_by_flask(flask)
    assert (hot.status_code, hot.get_json()) == (flask.status_code, flask.get_json())
    assert hot.status_code == status and answer.items() <= hot.get_json().items()
    assert comparable_headers(hot) == comparable_headers(flask)


def test_a_host_outside_trusted_hosts_gets_the_answer_flask_gives(app, client, machine_client):
    """With TRUSTED_HOSTS set, Flask refuses any other Host (400); the hot path hands such a request to it."""
    app.config["TRUSTED_HOSTS"] = ["gatehouse.example"]
    try:
        hot, flask = (client.post("/oauth2/token", **cc_form(machine_client), headers=headers,
                                  base_url="https://attacker.example") for headers in ({}, {"Origin": FOREIGN_ORIGIN}))
        trusted = client.post("/oauth2/token", **cc_form(machine_client), base_url="https://gatehouse.example")
    finally:
        app.config["TRUSTED_HOSTS"] = None
    assert hot.status_code == flask.status_code == 400 and served_by_flask(hot)
    assert trusted.status_code == 200 and not served_by_flask(trusted)


def test_jwks_from_the_hot_path_matches_flask(client):
    hot = client.get("/oauth2/jwks")
    flask = client.get("/oauth2/jwks", headers={"Origin": FOREIGN_ORIGIN})

    assert not served_by_flask(hot) and served_by_flask(flask)
    assert hot.status_code == flask.status_code == 200
    assert hot.data == flask.data
    assert comparable_headers(hot) == comparable_headers(flask)
    assert hot.headers["Cache-Control"] == "public, max-age=300"


def test_https_answers_carry_hsts_on_both_paths(database_url):
    """Over https in production both paths send Strict-Transport-Security (RFC 6797 §7.1), as Talisman does."""
    production = create_app(make_settings(
        database_url, ENV="production", ISSUER="https://id.example.test", SIGNING_KEYS_DIR=signing_keys_dir(),
        # Never connected to: JWKS reads neither.
        DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none", REDIS_URL="redis://127.0.0.1:9/0",
        MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", MAIL_FROM="Gatehouse <no-reply@id.example.test>",
        # An Origin allowed by configuration, so that the CORS check reads no client from the database.
        CORS_EXTRA_ORIGINS="https://spa.example.test"))
    client = production.test_client()
    hot = client.get("/oauth2/jwks", base_url="https://id.example.test")
    flask = client.get("/oauth2/jwks", base_url="https://id.example.test",
                       headers={"Origin": "https://spa.example.test"})
    plain = client.get("/oauth2/jwks")

    assert not served_by_flask(hot) and served_by_flask(flask)
    assert hot.headers["Strict-Transport-Security"].startswith("max-age=")
    assert flask.headers.pop("Access-Control-Allow-Origin") == "https://spa.example.test"
    assert comparable_headers(hot) == comparable_headers(flask)
    assert "Strict-Transport-Security" not in plain.headers

    # https ended at a proxy that says so (X-Forwarded-Proto), as Talisman reads it.
    proxied = {"X-Forwarded-Proto": "https"}
    hot = client.get("/oauth2/jwks", headers=proxied)
    flask = client.get("/oauth2/jwks", headers=proxied | {"Origin": "https://spa.example.test"})
    assert not served_by_flask(hot) and served_by_flask(flask)
    assert hot.headers["Strict-Transport-Security"] == flask.headers["Strict-Transport-Security"]


def test_other_grants_reach_flask_with_their_body(client, token_request, machine_client, web_client):
    """A grant the hot path does not serve goes to Flask, which reads the same body: an unknown
    grant type is unsupported_grant_type (RFC 6749 §5.2), not a request without parameters."""
    response = client.post("/oauth2/token", **machine_client.authenticate({"grant_type": "urn:example:unknown"}))
    assert served_by_flask(response)
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"

    # A refresh_token grant: Flask parses the code and answers invalid_grant for an unknown token.
    refresh = token_request(web_client, grant_type="refresh_token", refresh_token="unknown")
    assert served_by_flask(refresh)
    assert refresh.get_json()["error"] == "invalid_grant"


def test_a_body_over_the_limit_is_refused_by_flask(client, machine_client):
    """MAX_CONTENT_LENGTH applies to the hot endpoints too: the hot path leaves such a body unread."""
    response = client.post("/oauth2/token", **cc_form(machine_client, scope="x" * (1024 * 1024 + 1)))
    assert response.status_code == 413


def test_request_ids_are_echoed_or_made(client):
    echoed = client.get("/oauth2/jwks", headers={"X-Request-ID": "trace-abcdef12"})
    assert echoed.headers["X-Request-ID"] == "trace-abcdef12"
    made = client.get("/oauth2/jwks", headers={"X-Request-ID": "bad id; with spaces"})
    assert re.fullmatch(r"[0-9a-f-]{36}", made.headers["X-Request-ID"])
    assert client.get("/oauth2/jwks").headers["X-Request-ID"] != made.headers["X-Request-ID"]


def test_an_unexpected_error_is_logged_with_the_request_id_and_answered_500(client, app, machine_client,
                                                                             monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(app.extensions["gatehouse.oauth"], "create_token_response", broken)
    with caplog.at_level(logging.ERROR, logger="app.oauth.hot_path"):
        response = client.post("/oauth2/token", headers={"X-Request-ID": "trace-500-abcdef"},
                               **cc_form(machine_client))

    assert response.status_code == 500
    assert response.data == b"Internal Server Error"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Request-ID"] == "trace-500-abcdef"
    [record] = [r for r in caplog.records if r.name == "app.oauth.hot_path"]
    assert record.request_id == "trace-500-abcdef"
    assert machine_client.secret not in caplog.text


@pytest.mark.settings(SIGNING_KEYS_DIR=ROTATION_KEYS_DIR)
def test_jwks_publishes_a_rotated_key_once_its_reuse_window_passes(client, settings):
    """A key made by `flask keys rotate` is published (long before it signs) on the first JWKS
    request after the serialised set's reuse window."""
    before = {key["kid"] for key in client.get("/oauth2/jwks").get_json()["keys"]}
    new = rotate_key(settings.SIGNING_KEYS_DIR, alg="RS256", activation_delay=600)
    assert new.kid not in {key["kid"] for key in client.get("/oauth2/jwks").get_json()["keys"]}

    time.sleep(hot_path.JWKS_REUSE_SECONDS)
    after = {key["kid"] for key in client.get("/oauth2/jwks").get_json()["keys"]}
    assert after == before | {new.kid}


def test_a_chunked_body_goes_to_flask_unread(client, machine_client):
    """A body of unknown length is not buffered here (it could be of any size): Flask reads it, within
    MAX_CONTENT_LENGTH, and answers the token request."""
    body = f"grant_type=client_credentials&client_id={machine_client.client_id}".encode()
    response = client.post("/oauth2/token", input_stream=io.BytesIO(body), auth=(machine_client.client_id,
                                                                               machine_client.secret),
                           headers={"Transfer-Encoding": "chunked",
                                    "Content-Type": "application/x-www-form-urlencoded"},
                           # As a server that has de-chunked the body says (PEP 3333's wsgi.input_terminated).
                           environ_overrides={"wsgi.input_terminated": True})

    assert served_by_flask(response)
    assert response.status_code == 200 and "access_token" in response.get_json()
