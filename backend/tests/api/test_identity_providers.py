"""/api/v1/identity-providers: platform administrators only; the envelope; callback_url; the client
secret never in a response or a log line."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import field_cipher
from app.models import AuditEvent, ExternalIdentity, IdentityProvider
from tests import factories
from app import create_app
from tests.conftest import Api, make_settings
from tests.saml_idp import TestIdP, key_and_certificate

BASE = "/api/v1/identity-providers"
SECRET = "upstream-client-secret-7c1e"
OUTPUT_FIELDS = {"id", "kind", "organization_id", "name", "enabled", "client_id", "client_secret_set", "scopes",
                 "trust_email", "allow_signup", "callback_url", "created_at", "updated_at"}


@pytest.fixture
def admin_token(db_session) -> str:
    return factories.session_token(factories.UserFactory(is_platform_admin=True))


@pytest.fixture
def user_token(db_session) -> str:
    return factories.session_token(factories.UserFactory())


def github(**overrides: Any) -> dict[str, Any]:
    return {"kind": "github", "name": "GitHub", "client_id": "Iv1.abc", "client_secret": SECRET} | overrides


@pytest.fixture
def provider_id(api, admin_token) -> str:
    response = api.post(BASE, token=admin_token, json=github())
    assert response.status == 201, response.body
    return response.data["id"]


def test_create_provider_returns_201_with_callback_url_and_no_secret(api, admin_token, settings, db_session):
    response = api.post(BASE, token=admin_token, json=github(base_url="https://github.example.com"))

    assert response.status == 201
    data = response.data
    assert set(data) == OUTPUT_FIELDS | {"base_url"}
    assert data["callback_url"] == f"{settings.ISSUER}/federation/{data['id']}/callback"
    assert data["client_secret_set"] is True and data["organization_id"] is None
    assert data["base_url"] == "https://github.example.com"
    assert SECRET not in response.headers.get("Location", "") + str(response.body)
    stored = db_session.get(IdentityProvider, uuid.UUID(data["id"]))
    assert stored.client_secret_ciphertext and SECRET not in stored.client_secret_ciphertext


def test_create_oidc_provider_checks_discovery_and_returns_its_settings(api, admin_token, upstream):
    upstream.serve_discovery()

    response = api.post(BASE, token=admin_token, json=github(kind="oidc", issuer=upstream.url))

    assert response.status == 201, response.body
    assert (response.data["issuer"], response.data["discovery_url"]) == (upstream.url, None)
    assert "base_url" not in response.data


def test_create_oidc_provider_with_mismatched_discovery_is_422_on_issuer(api, admin_token, upstream, db_session):
    upstream.serve_discovery("https://other.example")

    response = api.post(BASE, token=admin_token, json=github(kind="oidc", issuer=upstream.url))

    assert (response.status, response.error_type) == (422, "VALIDATION_ERROR")
    assert "must be identical" in response.body["error"]["details"]["issuer"][0]
    assert db_session.scalars(select(IdentityProvider)).all() == []


@pytest.mark.parametrize("body", [
    github(unknown_field=1),
    github(kind="saml"),
    {"kind": "github", "name": "GitHub", "client_id": "x"},
    github(scopes=["bad scope"]),
    github(hosted_domain="not a domain"),
    github(tenant="common"),
], ids=["unknown-field", "unknown-kind", "no-secret", "bad-scope", "bad-domain", "other-kinds-field"])
def test_create_provider_with_invalid_body_is_422(api, admin_token, body):
    response = api.post(BASE, token=admin_token, json=body)

    assert (response.status, response.error_type) == (422, "VALIDATION_ERROR")


def test_list_providers_returns_a_page_without_secrets(api, admin_token, provider_id):
    response = api.get(BASE, token=admin_token)

    assert response.status == 200
    assert [p["id"] for p in response.data] == [provider_id]
    assert response.body["meta"] == {"page": 1, "per_page": 20, "total": 1}
    assert SECRET not in str(response.body)


def test_get_provider_returns_it_without_secret(api, admin_token, provider_id):
    response = api.get(f"{BASE}/{provider_id}", token=admin_token)

    assert response.status == 200
    assert set(response.data) == OUTPUT_FIELDS | {"base_url"}
    assert "client_secret" not in response.data


def test_patch_provider_changes_fields_and_audits_their_names(api, admin_token, provider_id, db_session):
    response = api.patch(f"{BASE}/{provider_id}", token=admin_token,
                         json={"enabled": False, "client_secret": "rotated-secret", "allow_signup": False})

    assert response.status == 200
    assert (response.data["enabled"], response.data["allow_signup"]) == (False, False)
    assert "rotated-secret" not in str(response.body)
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "identity_provider.updated"))
    assert event.details == {"fields": ["allow_signup", "client_secret", "enabled"]}


@pytest.mark.parametrize("body", [{"kind": "oidc"}, {"issuer": "https://idp.example.com"}, {"name": ""}],
                         ids=["kind", "other-kinds-field", "blank-name"])
def test_patch_provider_with_invalid_body_is_422_and_changes_nothing(api, admin_token, provider_id, db_session, body):
    response = api.patch(f"{BASE}/{provider_id}", token=admin_token, json=body)

    assert (response.status, response.error_type) == (422, "VALIDATION_ERROR")
    assert db_session.get(IdentityProvider, uuid.UUID(provider_id)).kind == "github"


def test_delete_provider_removes_it_and_audits(api, admin_token, provider_id, db_session):
    response = api.delete(f"{BASE}/{provider_id}", token=admin_token)

    assert response.status == 200
    assert db_session.get(IdentityProvider, uuid.UUID(provider_id)) is None
    assert db_session.scalar(select(AuditEvent.action).where(AuditEvent.target_id == provider_id)
                             .order_by(AuditEvent.occurred_at.desc()).limit(1)) == "identity_provider.deleted"


def test_delete_provider_stranding_a_passwordless_account_returns_409(api, admin_token, provider_id, db_session):
    user = factories.UserFactory(password_hash=None)
    db_session.add(ExternalIdentity(user_id=user.id, provider_id=uuid.UUID(provider_id), subject="only-way-in"))

    response = api.delete(f"{BASE}/{provider_id}", token=admin_token)

    assert (response.status, response.error_type) == (409, "CONFLICT")
    assert response.body["error"]["details"] == {"stranded_accounts": 1}
    db_session.expire_all()
    assert db_session.get(IdentityProvider, uuid.UUID(provider_id)) is not None


def test_delete_provider_unlinks_accounts_with_a_password(api, admin_token, provider_id, db_session):
    user = factories.UserFactory()
    db_session.add(ExternalIdentity(user_id=user.id, provider_id=uuid.UUID(provider_id), subject="has-password"))

    assert api.delete(f"{BASE}/{provider_id}", token=admin_token).status == 200
    db_session.expire_all()
    assert db_session.scalar(select(ExternalIdentity)) is None


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_provider_is_404(api, admin_token, method):
    response = api.request(method, f"{BASE}/{uuid.uuid4()}", token=admin_token, json={"name": "x"})

    assert (response.status, response.error_type) == (404, "NOT_FOUND")


OPERATIONS = [("GET", ""), ("POST", ""), ("GET", "/{id}"), ("PATCH", "/{id}"), ("DELETE", "/{id}")]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_endpoint_for_non_admin_is_403_and_changes_nothing(api, user_token, provider_id, db_session, method, path):
    """A platform resource: a signed-in user who is not a platform administrator is refused (403, as for
    /api/v1/clients), whether or not the provider exists."""
    response = api.request(method, BASE + path.format(id=provider_id), token=user_token,
                           json={"name": "Hijacked"} if method == "PATCH" else github(name="Hijacked"))

    assert (response.status, response.error_type) == (403, "PERMISSION_DENIED")
    assert [p.name for p in db_session.scalars(select(IdentityProvider))] == ["GitHub"]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_endpoint_without_token_is_401(api, method, path):
    response = api.request(method, BASE + path.format(id=uuid.uuid4()))

    assert (response.status, response.error_type) == (401, "AUTHENTICATION_ERROR")


def test_client_secret_is_never_logged(api, admin_token, caplog, upstream):
    upstream.serve_discovery()
    with caplog.at_level(logging.DEBUG):
        created = api.post(BASE, token=admin_token, json=github(kind="oidc", issuer=upstream.url))
        api.patch(f"{BASE}/{created.data['id']}", token=admin_token, json={"client_secret": SECRET + "-2"})
        api.post(BASE, token=admin_token, json=github(kind="oidc", issuer="https://other.invalid"))
        api.get(BASE, token=admin_token)

    assert created.status == 201
    assert caplog.records
    assert SECRET not in caplog.text


def test_create_oidc_provider_with_loopback_issuer_is_refused_when_private_networks_are_not_allowed(
        database_url, db_session, admin_token, upstream):
    upstream.serve_discovery()
    # As production: upstream URLs may not point at private networks.
    guarded = Api(create_app(make_settings(database_url, FEDERATION_ALLOW_PRIVATE_NETWORKS=False)).test_client(),
                  db_session)

    response = guarded.post(BASE, token=admin_token, json=github(kind="oidc", issuer=upstream.url))

    assert (response.status, response.error_type) == (422, "VALIDATION_ERROR")
    assert "private, loopback or link-local" in response.body["error"]["details"]["issuer"][0]
    assert upstream.received == []


# --- saml connections ---------------------------------------------------------------------------------

SAML_IDP = TestIdP()


def saml(**overrides: Any) -> dict[str, Any]:
    return {"kind": "saml", "name": "Corp SAML", "idp_entity_id": TestIdP.entity_id, "idp_sso_url": TestIdP.sso_url,
            "idp_certificates": [SAML_IDP.certificate_pem]} | overrides


def test_create_saml_connection_generates_an_encrypted_sp_key_and_returns_its_urls(api, admin_token, settings,
                                                                                   db_session, app):
    response = api.post(BASE, token=admin_token, json=saml(group_role_map={"Engineering": "admin"}))
    assert response.status == 201, response.body
    data = response.data
    base = f"{settings.ISSUER}/saml/{data['id']}"
    assert data["sp_entity_id"] == data["metadata_url"] == f"{base}/metadata"
    assert data["acs_url"] == f"{base}/acs"
    assert data["sp_certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert data["jit_membership"] is True and data["allow_idp_initiated"] is False
    assert data["default_role"] == "member" and data["group_role_map"] == {"Engineering": "admin"}
    assert data["client_id"] is None and data["client_secret_set"] is False and data["scopes"] == []
    assert "PRIVATE KEY" not in str(response.body)
    stored = db_session.get(IdentityProvider, uuid.UUID(data["id"]))
    assert "PRIVATE KEY" not in stored.sp_private_key_ciphertext
    with app.app_context():
        assert field_cipher().decrypt(stored.sp_private_key_ciphertext).startswith("-----BEGIN PRIVATE KEY-----")


@pytest.mark.parametrize(("body", "field"), [
    (saml(idp_certificates=["not a certificate"]), "idp_certificates"),
    (saml(idp_sso_url="ftp://idp.corp.test/sso"), "idp_sso_url"),
    ({k: v for k, v in saml().items() if k != "idp_entity_id"}, "idp_entity_id"),
    (saml(default_role="owner"), "default_role"),
    (saml(group_role_map={"Admins": "owner"}), "group_role_map"),
    (saml(client_id="abc"), "client_id"),
    (saml(sp_certificate="-----BEGIN CERTIFICATE-----"), "sp_certificate"),
])
def test_create_saml_connection_with_a_bad_setting_is_422_on_that_field(api, admin_token, db_session, body, field):
    response = api.post(BASE, token=admin_token, json=body)
    assert response.status == 422, response.body
    assert field in response.body["error"]["details"]
    assert db_session.scalar(select(IdentityProvider)) is None


def test_patch_saml_connection_adds_a_rollover_certificate(api, admin_token, db_session):
    created = api.post(BASE, token=admin_token, json=saml()).data
    _, next_certificate = key_and_certificate("idp-next.corp.test")
    response = api.patch(f"{BASE}/{created['id']}", token=admin_token,
                         json={"idp_certificates": [SAML_IDP.certificate_pem, next_certificate],
                               "allow_idp_initiated": True})
    assert response.status == 200, response.body
    assert response.data["idp_certificates"] == [SAML_IDP.certificate_pem, next_certificate]
    assert response.data["allow_idp_initiated"] is True
    assert response.data["sp_certificate"] == created["sp_certificate"]
