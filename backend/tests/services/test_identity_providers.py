"""services.identity_providers: per-kind rules, the oidc issuer checked through its real discovery
document, encrypted client secrets, audit events; services.stored_secrets: key rotation."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from app import errors
from app.federation.discovery import UpstreamChecks
from app.federation.http import GuardedFetcher
from app.models import AuditEvent, ExternalIdentity, IdentityProvider, User
from app.models.base import encrypted_columns
from app.security.crypto import FieldCipher
from app.services import identity_providers, stored_secrets
from app.services.actor import Actor
from tests import factories
from tests.saml_idp import TestIdP

SECRET = "upstream-client-secret-4f9a"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
CIPHER = FieldCipher.from_keys([Fernet.generate_key().decode()])
DEVELOPMENT = UpstreamChecks(GuardedFetcher(allow_private_networks=True, require_https=False))
PRODUCTION = UpstreamChecks(GuardedFetcher(allow_private_networks=False, require_https=True))
ACTOR = Actor(user=None, user_agent="test")


def create(db_session, *, upstream=DEVELOPMENT, cipher=CIPHER, **fields: Any) -> IdentityProvider:
    values = {"kind": "github", "name": "GitHub", "client_id": "Iv1.abc", "client_secret": SECRET} | fields
    return identity_providers.create_provider(db_session, actor=ACTOR, cipher=cipher, upstream=upstream, **values)


def problems(raised: pytest.ExceptionInfo) -> dict[str, list[str]]:
    return raised.value.details


def actions(db_session) -> list[str]:
    return list(db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.occurred_at)))


# --- creation, per kind ---------------------------------------------------------------------------


def test_create_oidc_provider_fetches_discovery_and_stores_issuer_exactly(db_session, upstream):
    upstream.serve_discovery()

    provider = create(db_session, kind="oidc", name="Corp IdP", issuer=upstream.url)

    assert provider.kind_settings.issuer == upstream.url and provider.kind_settings.discovery_url is None
    assert provider.scopes == ["openid", "email", "profile"]
    assert [r.path for r in upstream.received] == ["/.well-known/openid-configuration"]


def test_create_oidc_provider_with_discovery_url_fetches_it(db_session, upstream):
    upstream.serve_discovery(path="/meta")

    provider = create(db_session, kind="oidc", issuer=upstream.url, discovery_url=f"{upstream.url}/meta")

    assert provider.settings == {"issuer": upstream.url, "discovery_url": f"{upstream.url}/meta"}


def test_create_oidc_provider_whose_discovery_names_another_issuer_raises_and_stores_nothing(db_session, upstream):
    upstream.serve_discovery(f"{upstream.url}/")

    with pytest.raises(errors.ValidationFailed) as raised:
        create(db_session, kind="oidc", issuer=upstream.url)

    assert "must be identical" in problems(raised)["issuer"][0]
    assert db_session.scalars(select(IdentityProvider)).all() == []


def test_create_oidc_provider_without_issuer_raises(db_session):
    with pytest.raises(errors.ValidationFailed) as raised:
        create(db_session, kind="oidc")

    assert list(problems(raised)) == ["issuer"]


def test_create_oidc_provider_in_production_refuses_loopback_issuer_without_fetching(db_session, upstream):
    upstream.serve_discovery(f"https://localhost:{upstream.port}")

    with pytest.raises(errors.ValidationFailed) as raised:
        create(db_session, kind="oidc", issuer=f"https://localhost:{upstream.port}", upstream=PRODUCTION)

    assert "private, loopback or link-local" in problems(raised)["issuer"][0]
    assert upstream.received == []


@pytest.mark.parametrize(("issuer", "problem"), [
    ("https://10.0.0.5", "private, loopback or link-local"),
    ("http://idp.example.com", "https"),
    ("https://idp.example.com?tenant=a", "query"),
], ids=["private-address", "http", "query"])
def test_create_oidc_provider_in_production_refuses_issuer(db_session, issuer, problem):
    with pytest.raises(errors.ValidationFailed) as raised:
        create(db_session, kind="oidc", issuer=issuer, upstream=PRODUCTION)

    assert problem in problems(raised)["issuer"][0]


def test_create_provider_without_openid_scope_raises_for_openid_kinds(db_session):
    with pytest.raises(errors.ValidationFailed) as raised:
        create(db_session, kind="google", scopes=["email"])

    assert list(problems(raised)) == ["scopes"]


@pytest.mark.parametrize(("kind", "field", "value"), [
    ("github", "issuer", "https://idp.example.com"),
    ("google", "tenant", "common"),
    ("oidc", "base_url", "https://github.example.com"),
    ("microsoft", "hosted_domain", "example.com"),
])
def test_create_provider_with_a_setting_of_another_kind_raises(db_session, kind, field, value):
    with pytest.raises(errors.ValidationFailed) as raised:
        create(db_session, kind=kind, **{field: value})

    assert problems(raised)[field] == [f"Not a setting of {kind} providers."]


def test_create_github_provider_defaults_to_github_com(db_session):
    provider = create(db_session)

    assert provider.settings == {"base_url": "https://github.com"}
    assert provider.kind_settings.api_url == "https://api.github.com"
    assert provider.scopes == ["read:user", "user:email"]


def test_create_github_enterprise_provider_keeps_base_url_without_trailing_slash(db_session):
    provider = create(db_session, base_url="https://github.example.com/")

    assert provider.kind_settings.api_url == "https://github.example.com/api/v3"


def test_create_google_provider_stores_hosted_domain_lower_case(db_session):
    assert create(db_session, kind="google", hosted_domain="Example.COM").settings == {"hosted_domain": "example.com"}


@pytest.mark.parametrize("tenant", ["common", "organizations"])
def test_create_multi_tenant_microsoft_provider_without_allowed_tenants_raises(db_session, tenant):
    with pytest.raises(errors.ValidationFailed) as raised:
        create(db_session, kind="microsoft", tenant=tenant)

    assert list(problems(raised)) == ["allowed_tenants"]


def test_create_multi_tenant_microsoft_provider_with_allowed_tenants(db_session):
    provider = create(db_session, kind="microsoft", tenant="organizations", allowed_tenants=[TENANT.upper()])

    assert provider.settings == {"tenant": "organizations", "allowed_tenants": [TENANT], "allow_any_tenant": False,
                                 "authority": "https://login.microsoftonline.com"}


def test_create_multi_tenant_microsoft_provider_allowing_any_tenant_explicitly(db_session):
    provider = create(db_session, kind="microsoft", tenant="common", allow_any_tenant=True,
                      authority="https://login.microsoftonline.us/")

    assert provider.kind_settings.allow_any_tenant is True
    assert provider.kind_settings.authority == "https://login.microsoftonline.us"


@pytest.mark.parametrize(("fields", "field"), [
    ({"tenant": "contoso"}, "tenant"),
    ({"tenant": TENANT, "allowed_tenants": [OTHER_TENANT]}, "allowed_tenants"),
    ({"tenant": "consumers", "allow_any_tenant": True}, "allow_any_tenant"),
    ({"tenant": "common", "allowed_tenants": ["not-a-guid"]}, "allowed_tenants"),
    ({"tenant": "common", "allow_any_tenant": True, "allowed_tenants": [TENANT]}, "allowed_tenants"),
    ({}, "tenant"),
], ids=["tenant-not-a-guid", "single-tenant-with-allowed", "consumers-any-tenant", "allowed-not-guid",
        "any-and-allowed", "tenant-missing"])
def test_create_microsoft_provider_with_bad_tenant_settings_raises(db_session, fields, field):
    with pytest.raises(errors.ValidationFailed) as raised:
        create(db_session, kind="microsoft", **fields)

    assert field in problems(raised)


# --- secrets ------------------------------------------------------------------------------------------


def test_create_provider_stores_client_secret_encrypted(db_session):
    provider = create(db_session)
    db_session.commit()

    stored = db_session.connection().exec_driver_sql(
        "SELECT client_secret_ciphertext FROM identity_providers").scalar_one()
    assert SECRET not in stored
    assert identity_providers.decrypt_client_secret(CIPHER, provider) == SECRET


def test_create_and_update_record_audit_events_without_the_secret(db_session):
    provider = create(db_session)
    identity_providers.update_provider(db_session, actor=ACTOR, cipher=CIPHER, upstream=DEVELOPMENT,
                                       provider=provider, client_secret="rotated-secret", name="GitHub.com")

    events = db_session.scalars(select(AuditEvent).order_by(AuditEvent.occurred_at)).all()
    assert [e.action for e in events] == ["identity_provider.created", "identity_provider.updated"]
    assert events[1].details == {"fields": ["client_secret", "name"]}
    assert all(e.target_id == str(provider.id) for e in events)
    assert SECRET not in repr([e.details for e in events]) and "rotated-secret" not in repr([e.details for e in events])


# --- updates ----------------------------------------------------------------------------------------


def test_update_provider_replaces_client_secret(db_session):
    provider = create(db_session)

    identity_providers.update_provider(db_session, actor=ACTOR, cipher=CIPHER, upstream=DEVELOPMENT,
                                       provider=provider, client_secret="rotated-secret")

    assert identity_providers.decrypt_client_secret(CIPHER, provider) == "rotated-secret"


def test_update_oidc_issuer_fetches_the_new_discovery_document(db_session, upstream):
    upstream.serve_discovery()
    provider = create(db_session, kind="oidc", issuer=upstream.url)
    upstream.serve_discovery(f"{upstream.url}/v2", path="/v2/.well-known/openid-configuration")

    identity_providers.update_provider(db_session, actor=ACTOR, cipher=CIPHER, upstream=DEVELOPMENT,
                                       provider=provider, issuer=f"{upstream.url}/v2")

    assert provider.kind_settings.issuer == f"{upstream.url}/v2"
    assert upstream.received[-1].path == "/v2/.well-known/openid-configuration"


def test_update_oidc_provider_without_changing_issuer_fetches_nothing(db_session, upstream):
    upstream.serve_discovery()
    provider = create(db_session, kind="oidc", issuer=upstream.url)

    identity_providers.update_provider(db_session, actor=ACTOR, cipher=CIPHER, upstream=DEVELOPMENT,
                                       provider=provider, enabled=False, trust_email=True)

    assert (provider.enabled, provider.trust_email, len(upstream.received)) == (False, True, 1)


def test_update_microsoft_provider_checks_the_merged_configuration(db_session):
    provider = create(db_session, kind="microsoft", tenant="common", allowed_tenants=[TENANT])

    with pytest.raises(errors.ValidationFailed) as raised:
        identity_providers.update_provider(db_session, actor=ACTOR, cipher=CIPHER, upstream=DEVELOPMENT,
                                           provider=provider, allowed_tenants=[])

    assert list(problems(raised)) == ["allowed_tenants"]


def test_update_provider_with_a_setting_of_another_kind_raises(db_session):
    provider = create(db_session)

    with pytest.raises(errors.ValidationFailed) as raised:
        identity_providers.update_provider(db_session, actor=ACTOR, cipher=CIPHER, upstream=DEVELOPMENT,
                                           provider=provider, tenant="common")

    assert problems(raised) == {"tenant": ["Not a setting of github providers."]}


def test_update_provider_cannot_change_kind(db_session):
    with pytest.raises(TypeError, match="kind"):
        identity_providers.update_provider(db_session, actor=ACTOR, cipher=CIPHER, upstream=DEVELOPMENT,
                                           provider=create(db_session), kind="oidc")


def test_update_provider_without_changes_records_no_event(db_session):
    provider = create(db_session)

    identity_providers.update_provider(db_session, actor=ACTOR, cipher=CIPHER, upstream=DEVELOPMENT,
                                       provider=provider, name="GitHub", base_url="https://github.com/")

    assert actions(db_session) == ["identity_provider.created"]


# --- deletion -----------------------------------------------------------------------------------------


def test_delete_provider_unlinks_its_identities_and_keeps_the_accounts(db_session):
    provider = create(db_session)
    user = factories.UserFactory()
    db_session.add(ExternalIdentity(user_id=user.id, provider_id=provider.id, subject="583231", email=user.email))
    db_session.flush()

    identity_providers.delete_provider(db_session, actor=ACTOR, provider=provider)
    db_session.commit()

    assert db_session.scalars(select(ExternalIdentity)).all() == []
    assert db_session.get(User, user.id) is not None
    assert actions(db_session)[-1] == "identity_provider.deleted"


def test_external_identity_subject_is_unique_per_provider(db_session):
    provider, user = create(db_session), factories.UserFactory()
    db_session.add(ExternalIdentity(user_id=user.id, provider_id=provider.id, subject="583231"))
    db_session.flush()
    db_session.add(ExternalIdentity(user_id=factories.UserFactory().id, provider_id=provider.id, subject="583231"))

    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        db_session.flush()


# --- key rotation ---------------------------------------------------------------------------------


def test_rotate_stored_secrets_reencrypts_under_the_first_key(db_session):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    provider = create(db_session, cipher=FieldCipher.from_keys([old_key]))
    both = FieldCipher.from_keys([new_key, old_key])
    assert identity_providers.decrypt_client_secret(both, provider) == SECRET  # the old key still decrypts

    rotated = stored_secrets.rotate_stored_secrets(db_session, actor=ACTOR, cipher=both)

    assert rotated == {"identity_providers": 1}
    assert identity_providers.decrypt_client_secret(FieldCipher.from_keys([new_key]), provider) == SECRET
    with pytest.raises(errors.FederationFailed) as refused:
        identity_providers.decrypt_client_secret(FieldCipher.from_keys([old_key]), provider)
    assert refused.value.reason == "secret_undecryptable"
    assert actions(db_session)[-1] == "secrets.rotated"


def test_rotate_stored_secrets_with_a_value_no_key_decrypts_raises_conflict_naming_the_row(db_session):
    provider = create(db_session, cipher=FieldCipher.from_keys([Fernet.generate_key().decode()]))

    with pytest.raises(errors.Conflict, match=str(provider.id)):
        stored_secrets.rotate_stored_secrets(db_session, actor=ACTOR, cipher=CIPHER)


def test_encrypted_columns_lists_the_client_secret_and_the_sp_key():
    """Rotation finds secrets by the ENCRYPTED mark: a new secret column marked so is rotated too."""
    assert encrypted_columns() == [(IdentityProvider, "client_secret_ciphertext"),
                                   (IdentityProvider, "sp_private_key_ciphertext")]


def test_rotate_stored_secrets_reencrypts_a_saml_connections_sp_key(db_session):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    idp = TestIdP()
    provider = identity_providers.create_provider(
        db_session, actor=ACTOR, cipher=FieldCipher.from_keys([old_key]), upstream=DEVELOPMENT, kind="saml",
        name="Corp SAML", idp_entity_id=idp.entity_id, idp_sso_url=idp.sso_url,
        idp_certificates=[idp.certificate_pem])
    private_key = identity_providers.decrypt_sp_private_key(FieldCipher.from_keys([old_key]), provider)

    rotated = stored_secrets.rotate_stored_secrets(db_session, actor=ACTOR,
                                                   cipher=FieldCipher.from_keys([new_key, old_key]))

    assert rotated == {"identity_providers": 1}
    assert identity_providers.decrypt_sp_private_key(FieldCipher.from_keys([new_key]), provider) == private_key
