"""Every HTML page is Cache-Control: no-store (security/headers.py): pages are per user and
often carry secrets in their URL or form."""

from __future__ import annotations

import re

import pytest


def test_sign_in_page_carrying_an_invitation_token_is_not_stored(client):
    response = client.get("/login?next=/invitations/accept%3Ftoken%3Dsecret-invitation-token")

    assert response.status_code == 200
    assert "secret-invitation-token" in response.get_data(as_text=True)
    assert response.headers.getlist("Cache-Control") == ["no-store"]


def test_logout_confirmation_page_is_not_stored(client):
    response = client.get("/oauth2/logout")

    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers.getlist("Cache-Control") == ["no-store"]
    assert len(response.headers.getlist("Content-Security-Policy")) == 1


@pytest.mark.parametrize("path, cache_control", [
    ("/oauth2/jwks", ["public, max-age=300"]),
    ("/.well-known/openid-configuration", []),
])
def test_json_documents_keep_their_own_caching(client, path, cache_control):
    """Only HTML gets no-store, and nothing adds a second Cache-Control."""
    response = client.get(path)

    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers.getlist("Cache-Control") == cache_control


@pytest.mark.parametrize("path", ["/oauth2/jwks", "/.well-known/openid-configuration", "/api/health"])
def test_json_answers_get_a_policy_that_loads_nothing_and_no_session_cookie(client, path):
    """A JSON answer opened as a document loads and runs nothing and is framed nowhere; no page's
    style nonce is made for it; and a request that brought no session cookie leaves with none, and
    without Vary: Cookie (its answer does not depend on one)."""
    response = client.get(path)

    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")


def test_a_page_that_uses_the_session_sets_its_cookie_and_allows_its_own_style(client):
    """The sign-in page keeps its CSRF token in the session: the cookie is set, Vary: Cookie sent, and
    the CSP allows the page's inline style by its nonce (and nothing else inline)."""
    response = client.get("/login")

    assert response.status_code == 200
    assert "session=" in response.headers["Set-Cookie"]
    assert "Cookie" in response.headers["Vary"]
    [nonce] = set(re.findall(r'nonce="([^"]+)"', response.get_data(as_text=True)))
    assert f"style-src 'self' 'nonce-{nonce}'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
