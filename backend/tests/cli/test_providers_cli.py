"""`flask providers create|list|delete` and `flask secrets rotate`."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from app import create_app
from app.models import AuditEvent, IdentityProvider
from app.security.crypto import FieldCipher
from app.services import identity_providers
from tests.conftest import TEST_ENCRYPTION_KEY, make_settings
from tests.saml_idp import TestIdP

SECRET = "upstream-client-secret-91bd"


@pytest.fixture
def run(app, db_session):
    """Invoke `flask ...`; the test's transaction ends first so the command can write."""
    def invoke(*args: str, app=app, **kwargs):
        db_session.commit()
        return app.test_cli_runner().invoke(args=list(args), **kwargs)
    return invoke


def test_create_reads_secret_from_prompt_and_prints_provider_without_it(run, db_session, settings):
    result = run("providers", "create", "--kind", "github", "--name", "GitHub", "--client-id", "Iv1.abc",
                 input=SECRET + "\n")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["callback_url"] == f"{settings.ISSUER}/federation/{data['id']}/callback"
    assert data["client_secret_set"] is True and SECRET not in result.output
    provider = db_session.get(IdentityProvider, uuid.UUID(data["id"]))
    assert identity_providers.decrypt_client_secret(FieldCipher.from_keys([TEST_ENCRYPTION_KEY]), provider) == SECRET
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "identity_provider.created"))
    assert event.user_agent == "gatehouse-cli"


def test_create_oidc_provider_fetches_discovery(run, upstream):
    upstream.serve_discovery()

    result = run("providers", "create", "--kind", "oidc", "--name", "Corp", "--client-id", "gatehouse",
                 "--issuer", upstream.url, "--scope", "openid email", input=SECRET + "\n")

    assert result.exit_code == 0, result.output
    assert upstream.received and json.loads(result.stdout[result.stdout.index("{"):])["scopes"] == ["openid", "email"]


def test_create_with_invalid_settings_fails_naming_the_field(run, db_session):
    result = run("providers", "create", "--kind", "microsoft", "--name", "Entra", "--client-id", "x",
                 "--tenant", "common", input=SECRET + "\n")

    assert result.exit_code == 1
    assert "allowed_tenants:" in result.output
    assert db_session.scalars(select(IdentityProvider)).all() == []


def test_list_prints_every_provider_without_secrets(run):
    run("providers", "create", "--kind", "google", "--name", "Google", "--client-id", "g", input=SECRET + "\n")

    result = run("providers", "list")

    assert result.exit_code == 0
    assert [p["name"] for p in json.loads(result.stdout)] == ["Google"]
    assert SECRET not in result.output


def test_delete_removes_the_provider(run, db_session):
    created = run("providers", "create", "--kind", "google", "--name", "Google", "--client-id", "g",
                  input=SECRET + "\n")
    provider_id = json.loads(created.stdout[created.stdout.index("{"):])["id"]

    result = run("providers", "delete", provider_id)

    assert result.exit_code == 0, result.output
    assert db_session.scalars(select(IdentityProvider)).all() == []


def test_delete_unknown_provider_fails(run):
    result = run("providers", "delete", str(uuid.uuid4()))

    assert result.exit_code == 1 and "not found" in result.output


def test_secrets_rotate_reencrypts_under_the_new_first_key_and_logs_no_secret(run, database_url, db_session, caplog):
    run("providers", "create", "--kind", "google", "--name", "Google", "--client-id", "g", input=SECRET + "\n")
    new_key = Fernet.generate_key().decode()
    rotated_app = create_app(make_settings(database_url, ENCRYPTION_KEYS=f"{new_key},{TEST_ENCRYPTION_KEY}"))

    with caplog.at_level(logging.DEBUG):
        result = run("secrets", "rotate", app=rotated_app)

    assert result.exit_code == 0, result.output
    assert "identity_providers: 1 re-encrypted" in result.output
    provider = db_session.scalars(select(IdentityProvider)).one()
    assert identity_providers.decrypt_client_secret(FieldCipher.from_keys([new_key]), provider) == SECRET
    assert SECRET not in caplog.text + result.output


def test_secrets_rotate_without_the_old_key_fails_and_changes_nothing(run, database_url, db_session):
    run("providers", "create", "--kind", "google", "--name", "Google", "--client-id", "g", input=SECRET + "\n")
    before = db_session.scalars(select(IdentityProvider)).one().client_secret_ciphertext
    db_session.commit()
    stranger = create_app(make_settings(database_url, ENCRYPTION_KEYS=Fernet.generate_key().decode()))

    result = run("secrets", "rotate", app=stranger)

    assert result.exit_code == 1 and "no key in ENCRYPTION_KEYS decrypts" in result.output
    db_session.expire_all()
    assert db_session.scalars(select(IdentityProvider)).one().client_secret_ciphertext == before


# --- saml connections: the same service as the API, no client id or secret --------------------------------

SAML_IDP = TestIdP()


def test_create_saml_connection_from_a_metadata_file(run, tmp_path, settings, db_session):
    metadata = tmp_path / "idp-metadata.xml"
    metadata.write_text(SAML_IDP.metadata())

    result = run("providers", "create", "--kind", "saml", "--name", "Corp SAML", "--idp-metadata-file", str(metadata))

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["idp_entity_id"] == SAML_IDP.entity_id and data["idp_slo_url"] == SAML_IDP.slo_url
    assert data["sls_url"] == f"{settings.ISSUER}/saml/{data['id']}/sls"
    assert "Client secret" not in result.output
    assert db_session.get(IdentityProvider, uuid.UUID(data["id"])).sp_private_key_ciphertext


def test_create_saml_connection_from_a_metadata_url(run, upstream):
    upstream.serve("/metadata", SAML_IDP.metadata(sso_bindings=("HTTP-POST",)).encode())

    result = run("providers", "create", "--kind", "saml", "--name", "Corp SAML",
                 "--idp-metadata-url", f"{upstream.url}/metadata")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["idp_sso_binding"] == "HTTP-POST"


def test_create_saml_connection_field_by_field(run, tmp_path):
    certificate = tmp_path / "idp.pem"
    certificate.write_text(SAML_IDP.certificate_pem)

    result = run("providers", "create", "--kind", "saml", "--name", "Corp SAML", "--idp-entity-id",
                 SAML_IDP.entity_id, "--idp-sso-url", SAML_IDP.sso_url, "--idp-sso-binding", "HTTP-POST",
                 "--idp-certificate-file", str(certificate), "--allow-idp-initiated")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["idp_certificates"] == [SAML_IDP.certificate_pem] and data["allow_idp_initiated"] is True


def test_create_saml_connection_with_certless_metadata_fails_naming_the_field(run, tmp_path, db_session):
    metadata = tmp_path / "idp-metadata.xml"
    metadata.write_text(SAML_IDP.metadata(certificates=[]))

    result = run("providers", "create", "--kind", "saml", "--name", "Corp SAML", "--idp-metadata-file", str(metadata))

    assert result.exit_code == 1
    assert "idp_metadata_xml:" in result.output and "no signing certificate" in result.output
    assert db_session.scalar(select(IdentityProvider)) is None
