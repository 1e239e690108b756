"""Every HTML page is Cache-Control: no-store (security/headers.py): pages are per user and
often carry secrets in their URL or form."""

from __future__ import annotations

import pytest


def test_sign_in_page_carrying_an_invitation_token_is_not_stored(client):
    response = client.get("/login?next=/invitations/accept%3Ftoken%3Dsecret-invitation-token")

    assert response.status_code == 200
    assert "secret-invitation-token" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


def test_logout_confirmation_page_is_not_stored(client):
    response = client.get("/oauth2/logout")

    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path, cache_control", [
    ("/oauth2/jwks", ["public, max-age=300"]),
    ("/.well-known/openid-configuration", []),
])
def test_json_documents_keep_their_own_caching(client, path, cache_control):
    """Only HTML gets no-store, and nothing adds a second Cache-Control."""
    response = client.get(path)

    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers.getlist("Cache-Control") == cache_control
