"""security/request_input.py: a value the database cannot store (NUL, a lone surrogate) or JSON nested
beyond MAX_JSON_DEPTH is refused at the edge with a 400 in the endpoint's own format, wherever the
request carries it (issue 12, findings 2 and 6). On PostgreSQL these reached the database: a 500."""

from __future__ import annotations

import base64

import pytest
from app.security.request_input import shown

FOREIGN_ORIGIN = "https://not-a-client.example"

NUL = "\x00"
SURROGATE = "\ud800"


# --- protocol endpoints: RFC 6749 §5.2 invalid_request -----------------------------------------

def assert_invalid_request(response) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("headers", [{}, {"Origin": FOREIGN_ORIGIN}], ids=["no-origin", "origin"])
@pytest.mark.parametrize("form", [
    "grant_type=client_credentials&client_id=ab%00c&client_secret=s",
    "grant_type=client_credentials&scope=invoices%00",
    "grant_type=client_credentials&sc%00ope=x",
], ids=["client_id", "scope", "field-name"])
def test_token_form_field_with_nul_is_invalid_request(client, machine_client, headers, form):
    """Finding 2: `client_id=ab%00c` reached PostgreSQL (psycopg.DataError, a 500)."""
    response = client.post("/oauth2/token", data=form, content_type="application/x-www-form-urlencoded",
                           headers=headers)

    assert_invalid_request(response)


@pytest.mark.parametrize("credentials", [b"ab%00c:secret", b"ab\x00c:secret", b"id:se%00cret"],
                         ids=["encoded", "raw", "secret"])
def test_http_basic_credential_with_nul_is_invalid_request(client, credentials):
    header = "Basic " + base64.b64encode(credentials).decode()
    response = client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": header})

    assert_invalid_request(response)


@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
def test_token_parameter_with_nul_is_invalid_request(client, machine_client, path):
    response = client.post(path, data={"token": f"a{NUL}b"}, auth=(machine_client.client_id, machine_client.secret))

    assert_invalid_request(response)


@pytest.mark.parametrize("path", ["/oauth2/authorize?response_type=code&client_id=ab%00c&scope=openid",
                                  "/oauth2/logout?post_logout_redirect_uri=https://x.test/%00"])
def test_browser_endpoint_parameter_with_nul_shows_the_error_page(client, path):
    response = client.get(path)

    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "invalid_request" in response.get_data(as_text=True)


# --- pages: a plain HTML 400 -------------------------------------------------------------------

@pytest.mark.parametrize("method, path, data", [
    ("GET", "/login?login_hint=a%00b", None),
    ("POST", "/login", {"email": f"a{NUL}@x.test", "password": "x"}),
])
def test_page_parameter_with_nul_is_html_400(client, method, path, data):
    response = client.open(path, method=method, data=data)

    assert response.status_code == 400
    assert response.mimetype == "text/html"


def test_a_value_only_in_the_path_is_checked_too(app, client):
    """A request with nothing else to read (no query, body or credentials) skips the check only when it has
    no path values either: a view taking a path segment as text is never handed a NUL."""
    seen = []

    @app.get("/_segment/<value>")
    def segment(value):
        seen.append(value)
        return "ok"

    response = client.get("/_segment/ab%00c")

    assert response.status_code == 400 and "path segment" in response.get_data(as_text=True)
    assert seen == []


# --- how an error message quotes input ---------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ('https://app.test\\@evil.test/cb', "https://app.test%5C@evil.test/cb"),
    ('say "hi"', "say %22hi%22"),
    ("café", "caf%C3%A9"),
    ("del\x7f", "del%7F"),
    ("100%", "100%25"),
    (SURROGATE, "%ED%A0%80"),
    ("x" * 100, "x" * 64 + "..."),
], ids=["backslash", "quote", "non-ascii", "del", "percent", "surrogate", "long"])
def test_shown_keeps_to_the_error_description_characters(value, expected):
    """RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E."""
    assert shown(value) == expected
