"""`flask clients create` and `flask clients list`."""

from __future__ import annotations

import json

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import select

from app.models import AuditEvent, OAuthClient
from tests.factories import OAuthClientFactory, UserFactory, create_organization

WEB_APP = ["--name", "Billing", "--confidential", "--redirect-uri", "https://billing.example.com/callback",
           "--redirect-uri", "https://billing.example.com/alt", "--post-logout-redirect-uri",
           "https://billing.example.com/", "--grant-types", "authorization_code,refresh_token",
           "--scopes", "openid profile email offline_access"]


@pytest.fixture
def run(app, db_session):
    """Invoke `flask clients ...`; the test's transaction ends first so the command can write."""
    runner = app.test_cli_runner()

    def invoke(*args: str, **kwargs):
        db_session.commit()
        return runner.invoke(args=["clients", *args], **kwargs)
    return invoke


def stored(db_session, client_id: str) -> OAuthClient:
    return db_session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def test_create_confidential_client_prints_json_with_secret(run, db_session):
    result = run("create", *WEB_APP)

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["client_type"] == "confidential"
    client = stored(db_session, data["client_id"])
    assert client.check_client_secret(data["client_secret"])
    assert client.redirect_uris == ["https://billing.example.com/callback", "https://billing.example.com/alt"]
    assert client.post_logout_redirect_uris == ["https://billing.example.com/"]
    assert client.grant_types == ["authorization_code", "refresh_token"]
    assert client.scopes == ["openid", "profile", "email", "offline_access"]
    assert client.first_party is False


def test_create_records_audit_event_from_cli(run, db_session):
    data = json.loads(run("create", *WEB_APP).stdout)
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "client.created"))
    assert event.target_id == data["client_id"]
    assert event.actor_user_id is None and event.user_agent == "gatehouse-cli"


def test_create_public_first_party_client(run, db_session):
    result = run("create", "--name", "Mobile", "--public", "--redirect-uri", "com.example.app:/callback",
                 "--grant-types", "authorization_code,refresh_token", "--scopes", "openid offline_access",
                 "--first-party")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["client_secret"] is None
    assert (data["token_endpoint_auth_method"], data["require_pkce"], data["first_party"]) == ("none", True, True)


def test_create_accepts_repeated_scopes_and_grant_types(run, db_session):
    result = run("create", "--name", "Export", "--confidential", "--grant-types", "client_credentials",
                 "--scopes", "reports:read", "--scopes", "reports:write invoices:read")
    assert result.exit_code == 0, result.output
    client = stored(db_session, json.loads(result.stdout)["client_id"])
    assert client.scopes == ["reports:read", "reports:write", "invoices:read"]
    assert client.grant_types == ["client_credentials"]


def test_create_private_key_jwt_client_from_jwks_file(run, db_session, tmp_path):
    jwks = {"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    result = run("create", "--name", "Signed", "--confidential", "--grant-types", "client_credentials",
                 "--scopes", "reports:read", "--token-endpoint-auth-method", "private_key_jwt",
                 "--jwks", str(tmp_path / "jwks.json"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["client_secret"] is None and data["jwks"] == jwks


@pytest.mark.parametrize("args", [
    pytest.param([a for a in WEB_APP if a != "--confidential"], id="neither-type"),
    pytest.param([*WEB_APP, "--public"], id="both-types"),
])
def test_create_requires_exactly_one_client_type(run, db_session, args):
    result = run("create", *args)
    assert result.exit_code == 2
    assert "--public" in result.output
    assert db_session.scalars(select(OAuthClient)).all() == []


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["--name", "X", "--confidential", "--redirect-uri", "http://app.example.com/cb",
                  "--grant-types", "authorization_code", "--scopes", "openid"], "redirect_uris", id="http-uri"),
    pytest.param(["--name", "X", "--public", "--grant-types", "client_credentials", "--scopes", "x:read"],
                 "grant_types", id="public-client-credentials"),
    pytest.param(["--name", "X", "--confidential", "--grant-types", "client_credentials", "--scopes", "openid"],
                 "scopes", id="machine-openid"),
    pytest.param(["--name", "X", "--confidential", "--grant-types", "client_credentials", "--scopes", "x:read",
                  "--access-token-lifetime", "5"], "access_token_lifetime", id="lifetime"),
])
def test_create_invalid_client_exits_non_zero_with_field_message(run, db_session, args, message):
    result = run("create", *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert db_session.scalars(select(OAuthClient)).all() == []


def test_create_with_unreadable_jwks_json_fails(run, db_session, tmp_path):
    (tmp_path / "jwks.json").write_text("{not json")
    result = run("create", "--name", "Signed", "--confidential", "--grant-types", "client_credentials",
                 "--scopes", "reports:read", "--token-endpoint-auth-method", "private_key_jwt",
                 "--jwks", str(tmp_path / "jwks.json"))
    assert result.exit_code == 1
    assert "--jwks" in result.stderr


def test_list_prints_every_client_without_secrets(run, db_session):
    made = [OAuthClientFactory() for _ in range(3)]
    result = run("list")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [c["client_id"] for c in listed] == [c.client_id for c in made]
    assert all("client_secret" not in c and "client_secret_hash" not in c for c in listed)


def test_list_without_clients_prints_empty_array(run):
    result = run("list")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_list_reads_every_page(run, db_session, monkeypatch):
    monkeypatch.setattr("app.cli.clients._PAGE_SIZE", 2)
    made = [OAuthClientFactory() for _ in range(5)]
    listed = json.loads(run("list").stdout)
    assert [c["client_id"] for c in listed] == [c.client_id for c in made]


# --- organizations ---

@pytest.fixture
def acme(db_session):
    return create_organization(db_session, owner=UserFactory(), slug="acme")


@pytest.mark.parametrize("reference", ["slug", "id"])
def test_create_with_organization_makes_an_organization_client(run, db_session, acme, reference):
    result = run("create", *WEB_APP, "--organization", acme.slug if reference == "slug" else str(acme.id))

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["organization_id"] == str(acme.id)
    assert stored(db_session, data["client_id"]).organization_id == acme.id
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "client.created"))
    assert event.organization_id == acme.id


def test_create_with_unknown_organization_fails(run, db_session):
    result = run("create", *WEB_APP, "--organization", "no-such-org")
    assert result.exit_code == 1
    assert "no-such-org" in result.stderr
    assert db_session.scalars(select(OAuthClient)).all() == []


def test_create_organization_client_cannot_be_first_party(run, db_session, acme):
    result = run("create", *WEB_APP, "--organization", "acme", "--first-party")
    assert result.exit_code == 1
    assert "first_party: Only platform clients may skip consent." in result.stderr
    assert db_session.scalars(select(OAuthClient)).all() == []


def test_create_organization_required_client(run, db_session):
    result = run("create", *WEB_APP, "--organization-required")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["organization_required"] is True and data["organization_id"] is None
    assert stored(db_session, data["client_id"]).organization_required is True


def test_create_is_not_organization_required_by_default(run, db_session):
    data = json.loads(run("create", *WEB_APP).stdout)
    assert data["organization_required"] is False


def test_list_shows_each_clients_organization(run, db_session, acme):
    org_client, platform_client = OAuthClientFactory(organization_id=acme.id), OAuthClientFactory()
    listed = json.loads(run("list").stdout)
    assert {c["client_id"]: c["organization_id"] for c in listed} == {
        org_client.client_id: str(acme.id), platform_client.client_id: None}


def test_list_with_organization_shows_its_clients_only(run, db_session, acme):
    org_client = OAuthClientFactory(organization_id=acme.id)
    OAuthClientFactory()
    result = run("list", "--organization", "acme")
    assert result.exit_code == 0, result.output
    assert [c["client_id"] for c in json.loads(result.stdout)] == [org_client.client_id]


def test_list_with_unknown_organization_fails(run):
    result = run("list", "--organization", "no-such-org")
    assert result.exit_code == 1
    assert "no-such-org" in result.stderr
