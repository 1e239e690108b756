"""Signing in with GitHub, against a real HTTP server answering with GitHub's documented responses
(a GitHub Enterprise Server layout: {base_url}/login/oauth/..., API under {base_url}/api/v3)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from sqlalchemy import func, select

from app.extensions import field_cipher
from app.models import ExternalIdentity, IdentityProvider, User, UserSession
from tests.oauth.helpers import audit_events, parse_page, query_of, without_query
from tests.upstream import UpstreamServer

PRIMARY = "octo@corp.example"


@pytest.fixture
def github() -> Iterator[UpstreamServer]:
    server = UpstreamServer()
    server.serve("/login/oauth/access_token", {"access_token": "gho_token", "token_type": "bearer",
                                               "scope": "read:user,user:email"})
    server.serve("/api/v3/user", {"id": 583231, "login": "octocat", "name": "The Octocat",
                                  "email": "typed-in@elsewhere.example"})
    server.serve("/api/v3/user/emails", [
        {"email": "old@corp.example", "primary": False, "verified": True, "visibility": None},
        {"email": PRIMARY, "primary": True, "verified": True, "visibility": "public"}])
    yield server
    server.close()


@pytest.fixture
def provider(app, db_session, github) -> IdentityProvider:
    with app.app_context():
        secret = field_cipher().encrypt("github-secret")
    provider = IdentityProvider(kind="github", name="GitHub", client_id="Iv1.corp", client_secret_ciphertext=secret,
                                scopes=[], settings={"base_url": github.url})
    db_session.add(provider)
    db_session.commit()
    return provider


def sign_in(browser, provider: IdentityProvider, github: UpstreamServer):
    start = browser.http.get(f"/federation/{provider.id}/start")
    assert start.status_code == 302
    assert without_query(start.location) == f"{github.url}/login/oauth/authorize"
    sent = query_of(start.location)
    return browser.http.get(f"/federation/{provider.id}/callback", query_string={"code": "gh-code",
                                                                                "state": sent["state"]})


def count(db_session, model) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(model))


def test_github_sign_in_uses_the_numeric_id_and_the_verified_primary_email(browser, provider, github, db_session):
    response = sign_in(browser, provider, github)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    linked = db_session.scalar(select(ExternalIdentity))
    assert linked.subject == "583231"
    user = db_session.scalar(select(User))
    assert (user.email, user.email_verified, user.name) == (PRIMARY, True, "The Octocat")
    token_request = next(r for r in github.received if r.path == "/login/oauth/access_token")
    assert token_request.headers["Accept"] == "application/json"
    assert parse_qs(token_request.body.decode())["code"] == ["gh-code"]


def test_github_unverified_primary_email_is_ignored(browser, provider, github, db_session):
    github.serve("/api/v3/user/emails", [
        {"email": PRIMARY, "primary": True, "verified": False, "visibility": "public"},
        {"email": "other@corp.example", "primary": False, "verified": True, "visibility": None}])
    response = sign_in(browser, provider, github)
    assert response.status_code == 400
    assert "did not share your email" in parse_page(response).text
    assert (count(db_session, User), count(db_session, ExternalIdentity), count(db_session, UserSession)) == (0, 0, 0)
    assert audit_events(db_session, "federation.failed")[0].details == {"reason": "no_email"}


def test_github_token_error_with_status_200_is_refused(browser, provider, github, db_session):
    github.serve("/login/oauth/access_token", {"error": "bad_verification_code",
                                               "error_description": "The code passed is incorrect or expired."})
    response = sign_in(browser, provider, github)
    assert response.status_code == 400
    assert "refused to complete" in parse_page(response).text
    assert count(db_session, User) == 0
    assert not any(r.path.startswith("/api/v3/") for r in github.received)
