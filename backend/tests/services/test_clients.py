"""services.clients: registration, secrets, updates, rotation, deletion; with the rules they apply
(services.client_rules) and the CORS origins (services.client_origins)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey
from sqlalchemy import func, select, text, update

from app import errors
from app.config import MAX_CLIENT_ACCESS_TOKEN_LIFETIME
from app.models import AuditEvent, Consent, OAuthClient
from app.services import client_origins, clients
from app.services.actor import Actor
from tests.factories import DEFAULT_CLIENT_SECRET, OAuthClientFactory, UserFactory, create_organization

MAX_LIFETIME = 86400 * 90


@pytest.fixture
def actor(db_session) -> Actor:
    return Actor(user=UserFactory(is_platform_admin=True), ip="203.0.113.7", request_id="req-test-0001")


@pytest.fixture(scope="module")
def ec_jwks() -> dict[str, Any]:
    return {"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}


def web_app(**overrides: Any) -> dict[str, Any]:
    """create_client arguments for a valid confidential web app, with overrides."""
    values: dict[str, Any] = dict(
        name="Billing", client_type="confidential", redirect_uris=["https://billing.example.com/callback"],
        post_logout_redirect_uris=["https://billing.example.com/"],
        grant_types=["authorization_code", "refresh_token"], scopes=["openid", "profile", "email", "offline_access"])
    values.update(overrides)
    return values


def machine(**overrides: Any) -> dict[str, Any]:
    return web_app(**{"redirect_uris": [], "post_logout_redirect_uris": [], "grant_types": ["client_credentials"],
                      "scopes": ["invoices:read"], **overrides})


def spa(**overrides: Any) -> dict[str, Any]:
    return web_app(**{"client_type": "public", "redirect_uris": ["http://localhost:5173/callback"], **overrides})


def problems(db_session, actor, **kwargs: Any) -> dict[str, list[str]]:
    """The per-field details of the ValidationFailed that create_client must raise."""
    with pytest.raises(errors.ValidationFailed) as raised:
        clients.create_client(db_session, actor=actor, **kwargs)
    return raised.value.details


def events(db_session, action: str) -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- creation: confidential, public, private_key_jwt ---

def test_create_confidential_client_issues_secret_stored_as_sha256(db_session, actor):
    issued = clients.create_client(db_session, actor=actor, **web_app())
    db_session.commit()

    client = db_session.scalar(select(OAuthClient).where(OAuthClient.client_id == issued.client.client_id))
    assert issued.client_secret and len(issued.client_secret) >= 43  # 32 random bytes, base64url
    assert client.client_secret_hash == hashlib.sha256(issued.client_secret.encode()).hexdigest()
    row = db_session.execute(text("SELECT * FROM oauth_clients")).one()
    assert issued.client_secret not in repr(tuple(row))
    assert client.token_endpoint_auth_method == "client_secret_basic"
    assert client.response_types == ["code"]
    assert client.require_pkce is True


def test_create_client_id_is_url_safe_and_unique(db_session, actor):
    ids = {clients.create_client(db_session, actor=actor, **web_app()).client.client_id for _ in range(3)}
    assert len(ids) == 3
    assert all(len(i) >= 22 and all(c.isalnum() or c in "-_" for c in i) for i in ids)


def test_check_client_secret_accepts_only_the_issued_secret(db_session, actor):
    issued = clients.create_client(db_session, actor=actor, **web_app())
    assert issued.client.check_client_secret(issued.client_secret) is True
    assert issued.client.check_client_secret(issued.client_secret + "x") is False
    assert issued.client.check_client_secret("") is False


def test_create_client_secret_post_client_gets_a_secret(db_session, actor):
    issued = clients.create_client(db_session, actor=actor, **web_app(token_endpoint_auth_method="client_secret_post"))
    assert issued.client_secret is not None
    assert issued.client.token_endpoint_auth_method == "client_secret_post"


def test_create_public_client_has_no_secret_and_requires_pkce(db_session, actor):
    issued = clients.create_client(db_session, actor=actor, **spa())
    assert issued.client_secret is None
    assert issued.client.client_secret_hash is None
    assert issued.client.token_endpoint_auth_method == "none"
    assert issued.client.require_pkce is True
    assert issued.client.check_client_secret("") is False


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
def test_create_public_client_with_authenticating_method_fails(db_session, actor, method):
    assert "token_endpoint_auth_method" in problems(db_session, actor, **spa(token_endpoint_auth_method=method))


def test_create_confidential_client_with_method_none_fails(db_session, actor):
    assert "token_endpoint_auth_method" in problems(db_session, actor, **web_app(token_endpoint_auth_method="none"))


def test_create_unknown_client_type_fails(db_session, actor):
    assert "client_type" in problems(db_session, actor, **web_app(client_type="trusted"))


def test_create_blank_name_fails(db_session, actor):
    assert "name" in problems(db_session, actor, **web_app(name="   "))


def test_create_private_key_jwt_client_with_jwks_has_no_secret(db_session, actor, ec_jwks):
    issued = clients.create_client(db_session, actor=actor,
                                   **web_app(token_endpoint_auth_method="private_key_jwt", jwks=ec_jwks))
    assert issued.client_secret is None
    assert issued.client.client_secret_hash is None
    assert issued.client.jwks == ec_jwks


def test_create_private_key_jwt_client_accepts_rsa_and_p256_keys(db_session, actor):
    jwks = {"keys": [RSAKey.generate_key(2048).as_dict(private=False),
                     {**ECKey.generate_key("P-256").as_dict(private=False), "alg": "ES256"}]}
    issued = clients.create_client(db_session, actor=actor,
                                   **web_app(token_endpoint_auth_method="private_key_jwt", jwks=jwks))
    assert len(issued.client.jwks["keys"]) == 2


@pytest.mark.parametrize("key", [
    pytest.param(lambda: OKPKey.generate_key("Ed25519").as_dict(private=False), id="ed25519"),
    pytest.param(lambda: ECKey.generate_key("P-384").as_dict(private=False), id="p-384"),
    pytest.param(lambda: ECKey.generate_key("P-521").as_dict(private=False), id="p-521"),
    pytest.param(lambda: {**RSAKey.generate_key(2048).as_dict(private=False), "alg": "PS256"}, id="rsa-ps256"),
    pytest.param(lambda: {**ECKey.generate_key("P-256").as_dict(private=False), "alg": "RS256"}, id="ec-rs256"),
])
def test_a_key_no_advertised_assertion_alg_can_use_is_refused(db_session, actor, key):
    """Discovery's token_endpoint_auth_signing_alg_values_supported (RFC 8414 §2) is RS256 and ES256, which
    is what the token endpoint verifies: a key that signs with anything else could never authenticate."""
    details = problems(db_session, actor, **web_app(token_endpoint_auth_method="private_key_jwt",
                                                    jwks={"keys": [key()]}))
    assert "jwks" in details


def test_a_stored_key_set_the_rules_now_refuse_does_not_block_other_changes(db_session, actor):
    """A client registered before the assertion-algorithm rule (here with an Ed25519 key beside its
    RSA key) stays editable; setting such a key set now is refused."""
    jwks = {"keys": [RSAKey.generate_key(2048).as_dict(private=False),
                     OKPKey.generate_key("Ed25519").as_dict(private=False)]}
    client = OAuthClientFactory(token_endpoint_auth_method="private_key_jwt", client_secret=None, jwks=jwks)

    assert clients.update_client(db_session, actor=actor, client=client, name="Renamed").name == "Renamed"
    with pytest.raises(errors.ValidationFailed) as refused:
        clients.update_client(db_session, actor=actor, client=client, jwks={"keys": list(jwks["keys"])})
    assert "jwks" in refused.value.details


def test_create_private_key_jwt_client_without_jwks_fails(db_session, actor):
    assert "jwks" in problems(db_session, actor, **web_app(token_endpoint_auth_method="private_key_jwt"))


_small_rsa = {"kty": "RSA", "e": "AQAB", "n": base64.urlsafe_b64encode(b"\xc3" * 128).rstrip(b"=").decode()}


@pytest.mark.parametrize("jwks", [
    pytest.param({}, id="no-keys-member"),
    pytest.param({"keys": []}, id="empty"),
    pytest.param([], id="not-an-object"),
    pytest.param({"keys": ["key"]}, id="key-not-an-object"),
    pytest.param({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, id="symmetric"),
    pytest.param({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}, id="invalid-ec"),
    pytest.param({"keys": [_small_rsa]}, id="rsa-1024"),
    pytest.param({"keys": [{"kty": "XYZ"}]}, id="unknown-kty"),
    pytest.param({"keys": [{"kty": "RSA", "e": "AQAB"}]}, id="rsa-missing-n"),
])
def test_create_private_key_jwt_client_with_bad_jwks_fails(db_session, actor, jwks):
    assert "jwks" in problems(db_session, actor, **web_app(token_endpoint_auth_method="private_key_jwt", jwks=jwks))


def test_create_private_key_jwt_client_with_private_key_material_fails(db_session, actor):
    private = ECKey.generate_key("P-256").as_dict(private=True)
    details = problems(db_session, actor, **web_app(token_endpoint_auth_method="private_key_jwt",
                                                    jwks={"keys": [private]}))
    assert "private" in details["jwks"][0]


def test_create_private_key_jwt_client_with_encryption_key_fails(db_session, actor, ec_jwks):
    key = {**ec_jwks["keys"][0], "use": "enc"}
    assert "jwks" in problems(db_session, actor, **web_app(token_endpoint_auth_method="private_key_jwt",
                                                           jwks={"keys": [key]}))


def test_create_secret_client_with_jwks_fails(db_session, actor, ec_jwks):
    assert "jwks" in problems(db_session, actor, **web_app(jwks=ec_jwks))


# --- grant types and response types ---

@pytest.mark.parametrize("grant", ["implicit", "password", "urn:ietf:params:oauth:grant-type:device_code"])
def test_create_unsupported_grant_type_fails(db_session, actor, grant):
    assert "grant_types" in problems(db_session, actor, **web_app(grant_types=["authorization_code", grant]))


def test_create_without_grant_types_fails(db_session, actor):
    assert "grant_types" in problems(db_session, actor, **web_app(grant_types=[]))


def test_create_refresh_token_without_authorization_code_fails(db_session, actor):
    assert "grant_types" in problems(db_session, actor, **machine(grant_types=["client_credentials", "refresh_token"]))


def test_create_public_client_with_client_credentials_fails(db_session, actor):
    details = problems(db_session, actor, **spa(grant_types=["authorization_code", "client_credentials"],
                                                scopes=["profile"]))
    assert "grant_types" in details


def test_create_authorization_code_without_redirect_uri_fails(db_session, actor):
    assert "redirect_uris" in problems(db_session, actor, **web_app(redirect_uris=[]))


def test_create_client_credentials_client_needs_no_redirect_uri_and_has_no_response_types(db_session, actor):
    issued = clients.create_client(db_session, actor=actor, **machine())
    assert issued.client.redirect_uris == []
    assert issued.client.response_types == []
    assert issued.client_secret is not None


def test_create_removes_repeated_values_keeping_order(db_session, actor):
    issued = clients.create_client(db_session, actor=actor, **web_app(
        grant_types=["authorization_code", "refresh_token", "authorization_code"],
        scopes=["openid", "email", "openid"],
        redirect_uris=["https://a.example.com/cb", "https://b.example.com/cb", "https://a.example.com/cb"]))
    assert issued.client.grant_types == ["authorization_code", "refresh_token"]
    assert issued.client.scopes == ["openid", "email"]
    assert issued.client.redirect_uris == ["https://a.example.com/cb", "https://b.example.com/cb"]


# --- scopes ---

@pytest.mark.parametrize("scope", ["openid", "profile", "email", "offline_access", "organization",
                                   "invoices:read", "api.billing", "a", "x" * 64, "reports_v2:export-all"])
def test_create_accepts_oidc_and_api_scopes(db_session, actor, scope):
    clients.create_client(db_session, actor=actor, **web_app(scopes=["openid", scope]))


@pytest.mark.parametrize("scope", ["Invoices:read", "1invoices", "_private", "two words", "", "x" * 65,
                                   "invoices$read", "https://api.example.com/read", "openid*"])
def test_create_rejects_unknown_scope_shapes(db_session, actor, scope):
    assert "scopes" in problems(db_session, actor, **web_app(scopes=["openid", scope]))


@pytest.mark.parametrize("scope", ["openid", "offline_access"])
def test_create_client_credentials_client_with_user_scope_fails(db_session, actor, scope):
    assert "scopes" in problems(db_session, actor, **machine(scopes=["invoices:read", scope]))


def test_create_client_credentials_with_authorization_code_still_cannot_hold_openid(db_session, actor):
    details = problems(db_session, actor, **web_app(grant_types=["authorization_code", "client_credentials"]))
    assert "scopes" in details


# --- id token algorithm and lifetimes ---

def test_create_es256_id_token_client(db_session, actor):
    issued = clients.create_client(db_session, actor=actor, **web_app(id_token_signed_response_alg="ES256"))
    assert issued.client.id_token_signed_response_alg == "ES256"


@pytest.mark.parametrize("alg", ["HS256", "none", "PS256", ""])
def test_create_unsupported_id_token_alg_fails(db_session, actor, alg):
    assert "id_token_signed_response_alg" in problems(db_session, actor, **web_app(id_token_signed_response_alg=alg))


@pytest.mark.parametrize("seconds", [60, 3600, None])
def test_create_accepts_access_token_lifetimes_in_range(db_session, actor, seconds):
    issued = clients.create_client(db_session, actor=actor, **web_app(access_token_lifetime=seconds))
    assert issued.client.access_token_lifetime == seconds


@pytest.mark.parametrize("seconds", [60, 3600, MAX_LIFETIME, None])
def test_create_accepts_refresh_token_lifetimes_in_range(db_session, actor, seconds):
    issued = clients.create_client(db_session, actor=actor, **web_app(refresh_token_lifetime=seconds))
    assert issued.client.refresh_token_lifetime == seconds


def test_create_access_token_lifetime_beyond_signing_key_retention_fails(db_session, actor, settings):
    """An access token must not outlive the JWKS entry of the key that signed it (DESIGN: rotation
    never breaks tokens already issued), so per-client lifetimes stay within the key retention."""
    too_long = MAX_CLIENT_ACCESS_TOKEN_LIFETIME + 1

    assert "access_token_lifetime" in problems(db_session, actor, **web_app(access_token_lifetime=too_long))
    assert settings.key_retention > MAX_CLIENT_ACCESS_TOKEN_LIFETIME


@pytest.mark.parametrize("field", ["access_token_lifetime", "refresh_token_lifetime"])
@pytest.mark.parametrize("seconds", [0, 59, MAX_LIFETIME + 1, -60, True, 60.5, "600"])
def test_create_rejects_lifetimes_out_of_range(db_session, actor, field, seconds):
    assert field in problems(db_session, actor, **web_app(**{field: seconds}))


def test_create_reports_every_problem_at_once(db_session, actor):
    details = problems(db_session, actor, **spa(grant_types=["client_credentials"], scopes=["Bad"],
                                                id_token_signed_response_alg="HS256", access_token_lifetime=1))
    assert {"grant_types", "scopes", "id_token_signed_response_alg", "access_token_lifetime"} <= set(details)


def test_create_failure_writes_nothing(db_session, actor):
    problems(db_session, actor, **web_app(scopes=["Bad"]))
    assert db_session.scalar(select(func.count()).select_from(OAuthClient)) == 0
    assert events(db_session, "client.created") == []


# --- audit ---

def test_create_records_audit_event_without_secret(db_session, actor):
    issued = clients.create_client(db_session, actor=actor, **web_app())
    db_session.commit()
    [event] = events(db_session, "client.created")
    assert event.target_type == "client" and event.target_id == issued.client.client_id
    assert event.actor_user_id == actor.user.id
    assert event.request_id == "req-test-0001"
    assert event.details["client_type"] == "confidential"
    assert issued.client_secret not in json.dumps(event.details)


# --- lookups and listing ---

def test_get_client_by_client_id(db_session):
    client = OAuthClientFactory()
    assert clients.get_client(db_session, client.client_id) is client
    assert clients.get_client(db_session, "no-such-client") is None


def test_require_client_unknown_raises_not_found(db_session):
    with pytest.raises(errors.NotFound):
        clients.require_client(db_session, "no-such-client")


def test_list_all_clients_pages_oldest_first_with_total(db_session):
    made = [OAuthClientFactory() for _ in range(5)]
    first, total = clients.list_all_clients(db_session, page=1, per_page=2)
    third, _ = clients.list_all_clients(db_session, page=3, per_page=2)
    beyond, total_beyond = clients.list_all_clients(db_session, page=9, per_page=2)
    assert total == 5 and total_beyond == 5
    assert [c.client_id for c in first] == [c.client_id for c in made[:2]]
    assert [c.client_id for c in third] == [made[4].client_id]
    assert beyond == []


# --- updates ---

def test_update_client_changes_given_fields_and_audits_their_names(db_session, actor):
    client = OAuthClientFactory()
    clients.update_client(db_session, actor=actor, client=client, name="  Renamed  ",
                          redirect_uris=["https://new.example.com/cb"], first_party=True, access_token_lifetime=300)
    db_session.commit()
    assert (client.name, client.redirect_uris, client.first_party) == ("Renamed", ["https://new.example.com/cb"], True)
    assert client.access_token_lifetime == 300
    [event] = events(db_session, "client.updated")
    assert event.details == {"fields": ["access_token_lifetime", "first_party", "name", "redirect_uris"]}
    assert event.target_id == client.client_id


def test_update_client_without_changes_records_nothing(db_session, actor):
    client = OAuthClientFactory()
    clients.update_client(db_session, actor=actor, client=client, name=client.name, scopes=list(client.scopes))
    assert events(db_session, "client.updated") == []


def test_update_client_grant_types_recomputes_response_types(db_session, actor):
    client = OAuthClientFactory(grant_types=["authorization_code"], scopes=["invoices:read"])
    clients.update_client(db_session, actor=actor, client=client, grant_types=["client_credentials"])
    assert client.response_types == []
    clients.update_client(db_session, actor=actor, client=client,
                          grant_types=["client_credentials", "authorization_code"])
    assert client.response_types == ["code"]


def test_update_client_lifetime_to_none_restores_default(db_session, actor):
    client = OAuthClientFactory(refresh_token_lifetime=3600)
    clients.update_client(db_session, actor=actor, client=client, refresh_token_lifetime=None)
    assert client.refresh_token_lifetime is None


def test_update_public_client_to_client_credentials_fails_and_changes_nothing(db_session, actor):
    client = OAuthClientFactory(public=True)
    with pytest.raises(errors.ValidationFailed) as raised:
        clients.update_client(db_session, actor=actor, client=client, grant_types=["client_credentials"],
                              scopes=["invoices:read"])
    assert "grant_types" in raised.value.details
    assert client.grant_types == ["authorization_code", "refresh_token"]
    assert events(db_session, "client.updated") == []


def test_update_scopes_checks_them_against_existing_grant_types(db_session, actor):
    client = OAuthClientFactory(grant_types=["client_credentials"], redirect_uris=[], scopes=["invoices:read"])
    with pytest.raises(errors.ValidationFailed) as raised:
        clients.update_client(db_session, actor=actor, client=client, scopes=["invoices:read", "openid"])
    assert "scopes" in raised.value.details


def test_update_removing_last_redirect_uri_of_code_client_fails(db_session, actor):
    client = OAuthClientFactory()
    with pytest.raises(errors.ValidationFailed) as raised:
        clients.update_client(db_session, actor=actor, client=client, redirect_uris=[])
    assert "redirect_uris" in raised.value.details


def test_update_private_key_jwt_client_cannot_drop_its_jwks(db_session, actor, ec_jwks):
    client = OAuthClientFactory(token_endpoint_auth_method="private_key_jwt", client_secret=None, jwks=ec_jwks)
    with pytest.raises(errors.ValidationFailed) as raised:
        clients.update_client(db_session, actor=actor, client=client, jwks=None)
    assert "jwks" in raised.value.details


def test_update_private_key_jwt_client_replaces_jwks(db_session, actor, ec_jwks):
    client = OAuthClientFactory(token_endpoint_auth_method="private_key_jwt", client_secret=None, jwks=ec_jwks)
    new_jwks = {"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}
    clients.update_client(db_session, actor=actor, client=client, jwks=new_jwks)
    assert client.jwks == new_jwks


@pytest.mark.parametrize("field", ["client_secret_hash", "token_endpoint_auth_method", "client_id", "require_pkce"])
def test_update_client_refuses_fixed_fields(db_session, actor, field):
    client = OAuthClientFactory()
    with pytest.raises(TypeError):
        clients.update_client(db_session, actor=actor, client=client, **{field: "x"})


# --- secret rotation ---

def test_rotate_client_secret_invalidates_the_old_secret(db_session, actor):
    client = OAuthClientFactory()
    assert client.check_client_secret(DEFAULT_CLIENT_SECRET)
    issued = clients.rotate_client_secret(db_session, actor=actor, client=client)
    db_session.commit()
    assert issued.client is client
    assert issued.client_secret and issued.client_secret != DEFAULT_CLIENT_SECRET
    assert client.check_client_secret(issued.client_secret) is True
    assert client.check_client_secret(DEFAULT_CLIENT_SECRET) is False
    assert client.client_secret_hash == hashlib.sha256(issued.client_secret.encode()).hexdigest()


def test_rotate_client_secret_records_audit_event_without_secret(db_session, actor):
    client = OAuthClientFactory()
    issued = clients.rotate_client_secret(db_session, actor=actor, client=client)
    db_session.commit()
    [event] = events(db_session, "client.secret_rotated")
    assert event.target_id == client.client_id
    assert issued.client_secret not in json.dumps(event.details)


def test_rotate_public_client_secret_raises_conflict(db_session, actor):
    with pytest.raises(errors.Conflict):
        clients.rotate_client_secret(db_session, actor=actor, client=OAuthClientFactory(public=True))


def test_rotate_private_key_jwt_client_secret_raises_conflict(db_session, actor, ec_jwks):
    client = OAuthClientFactory(token_endpoint_auth_method="private_key_jwt", client_secret=None, jwks=ec_jwks)
    with pytest.raises(errors.Conflict):
        clients.rotate_client_secret(db_session, actor=actor, client=client)


def test_rotate_client_secret_after_concurrent_rotation_raises_conflict(db_session, actor):
    client = OAuthClientFactory()
    # Another request rotated the secret after this one loaded the client.
    db_session.execute(update(OAuthClient).where(OAuthClient.id == client.id)
                       .values(client_secret_hash="0" * 64).execution_options(synchronize_session=False))
    with pytest.raises(errors.Conflict):
        clients.rotate_client_secret(db_session, actor=actor, client=client)
    assert events(db_session, "client.secret_rotated") == []


# --- deletion ---

def test_delete_client_removes_it_with_its_consents_and_audits(db_session, actor):
    client = OAuthClientFactory()
    client_id, user = client.client_id, UserFactory()
    db_session.add(Consent(user_id=user.id, client_pk=client.id, scopes=["openid"]))
    db_session.commit()

    clients.delete_client(db_session, actor=actor, client=client)
    db_session.commit()

    assert clients.get_client(db_session, client_id) is None
    assert db_session.scalar(select(func.count()).select_from(Consent)) == 0
    [event] = events(db_session, "client.deleted")
    assert event.target_id == client_id


# --- CORS origins ---

def test_client_origins_are_web_origins_of_redirect_uris(db_session):
    client = OAuthClientFactory(redirect_uris=[
        "https://app.example.com/callback", "https://app.example.com:443/other", "https://APP.example.com/x",
        "https://admin.example.com:8443/cb", "http://127.0.0.1:8080/cb", "http://[::1]/cb",
        "http://localhost:80/cb", "com.example.app:/callback",
    ])
    assert client_origins.client_origins(client) == {
        "https://app.example.com", "https://admin.example.com:8443", "http://127.0.0.1:8080", "http://[::1]",
        "http://localhost",
    }


def test_all_cors_origins_unites_every_client(db_session):
    OAuthClientFactory(redirect_uris=["https://a.example.com/cb"])
    OAuthClientFactory(redirect_uris=["https://b.example.com/cb", "https://a.example.com/other"])
    OAuthClientFactory(grant_types=["client_credentials"], redirect_uris=[], scopes=["invoices:read"])
    assert client_origins.all_cors_origins(db_session) == {"https://a.example.com", "https://b.example.com"}


@pytest.mark.parametrize("field, uri", [
    ("redirect_uris", "http://app.example.com/cb"),
    ("redirect_uris", "https://app.example.com/cb#fragment"),
    ("redirect_uris", "https://*.example.com/cb"),
    ("post_logout_redirect_uris", "javascript:alert(1)"),
])
def test_create_client_directly_with_forbidden_redirect_uri_raises(db_session, actor, field, uri):
    """RFC 6749 §3.1.2, RFC 9700 §4.1.3: the service enforces the redirect URI rules for
    every caller (seed, CLI, API), not only the API schema."""
    details = problems(db_session, actor, **web_app(**{field: [uri]}))

    assert field in details
    assert db_session.scalar(select(func.count()).select_from(OAuthClient)) == 0


def test_find_platform_client_by_name_returns_the_oldest_platform_match_or_none(db_session, actor, acme):
    """An organization's client of the same name, even an older one, is never found (flask seed must
    not rotate an organization's secret)."""
    clients.create_client(db_session, actor=actor, organization_id=acme.id, **web_app(name="Same name"))
    first = clients.create_client(db_session, actor=actor, **web_app(name="Same name")).client
    clients.create_client(db_session, actor=actor, **web_app(name="Same name"))

    assert clients.find_platform_client_by_name(db_session, "Same name").id == first.id
    assert clients.find_platform_client_by_name(db_session, "No such client") is None



# --- organization clients ---

@pytest.fixture
def acme(db_session):
    return create_organization(db_session, owner=UserFactory(), slug="acme")


@pytest.fixture
def globex(db_session):
    return create_organization(db_session, owner=UserFactory(), slug="globex")


def test_create_organization_client_belongs_to_it_and_audits_in_its_trail(db_session, actor, acme):
    issued = clients.create_client(db_session, actor=actor, organization_id=acme.id, **web_app())
    db_session.commit()

    assert issued.client.organization_id == acme.id
    [event] = events(db_session, "client.created")
    assert event.organization_id == acme.id and event.target_id == issued.client.client_id


def test_create_platform_client_has_no_organization(db_session, actor):
    issued = clients.create_client(db_session, actor=actor, **web_app())
    assert issued.client.organization_id is None
    assert events(db_session, "client.created")[0].organization_id is None


def test_create_organization_client_cannot_be_first_party(db_session, actor, acme):
    details = problems(db_session, actor, organization_id=acme.id, **web_app(first_party=True))

    assert details == {"first_party": ["Only platform clients may skip consent."]}
    assert db_session.scalar(select(func.count()).select_from(OAuthClient)) == 0
    assert events(db_session, "client.created") == []


def test_create_platform_client_may_be_first_party(db_session, actor):
    assert clients.create_client(db_session, actor=actor, **web_app(first_party=True)).client.first_party is True


def test_update_organization_client_to_first_party_fails_and_changes_nothing(db_session, actor, acme):
    client = OAuthClientFactory(organization_id=acme.id)
    with pytest.raises(errors.ValidationFailed) as raised:
        clients.update_client(db_session, actor=actor, client=client, first_party=True, name="Renamed")

    assert raised.value.details == {"first_party": ["Only platform clients may skip consent."]}
    db_session.rollback()
    assert client.first_party is False and client.name != "Renamed"
    assert events(db_session, "client.updated") == []


@pytest.mark.parametrize("organization_required", [True, False])
def test_create_client_stores_organization_required(db_session, actor, organization_required):
    issued = clients.create_client(db_session, actor=actor, organization_required=organization_required,
                                   **web_app())
    db_session.commit()
    assert db_session.get(OAuthClient, issued.client.id).organization_required is organization_required


def test_create_client_is_not_organization_required_by_default(db_session, actor):
    assert clients.create_client(db_session, actor=actor, **web_app()).client.organization_required is False


def test_update_client_sets_organization_required_and_audits_it(db_session, actor):
    client = OAuthClientFactory()
    clients.update_client(db_session, actor=actor, client=client, organization_required=True)
    db_session.commit()
    assert client.organization_required is True
    [event] = events(db_session, "client.updated")
    assert event.details == {"fields": ["organization_required"]}


def test_organization_client_changes_are_audited_in_its_trail(db_session, actor, acme):
    client = OAuthClientFactory(organization_id=acme.id)
    client_id = client.client_id
    clients.update_client(db_session, actor=actor, client=client, name="Renamed")
    clients.rotate_client_secret(db_session, actor=actor, client=client)
    clients.delete_client(db_session, actor=actor, client=client)
    db_session.commit()

    trail = db_session.execute(select(AuditEvent.action, AuditEvent.organization_id)
                               .where(AuditEvent.target_id == client_id)).all()
    assert sorted(trail) == [("client.deleted", acme.id), ("client.secret_rotated", acme.id),
                             ("client.updated", acme.id)]


def test_require_organization_client_returns_the_organizations_own_client(db_session, acme):
    client = OAuthClientFactory(organization_id=acme.id)
    assert clients.require_organization_client(db_session, organization_id=acme.id,
                                               client_id=client.client_id) is client


def test_require_organization_client_of_another_organization_raises_not_found(db_session, acme, globex):
    client = OAuthClientFactory(organization_id=globex.id)
    with pytest.raises(errors.NotFound):
        clients.require_organization_client(db_session, organization_id=acme.id, client_id=client.client_id)


def test_require_organization_client_platform_client_raises_not_found(db_session, acme):
    client = OAuthClientFactory()
    with pytest.raises(errors.NotFound):
        clients.require_organization_client(db_session, organization_id=acme.id, client_id=client.client_id)


def test_require_organization_client_unknown_raises_not_found(db_session, acme):
    with pytest.raises(errors.NotFound):
        clients.require_organization_client(db_session, organization_id=acme.id, client_id="no-such-client")


def test_require_organization_client_without_organization_id_refuses_to_look(db_session):
    client = OAuthClientFactory()
    with pytest.raises(ValueError):
        clients.require_organization_client(db_session, organization_id=None, client_id=client.client_id)


def test_list_clients_of_an_organization_pages_its_clients_only(db_session, acme, globex):
    own = [OAuthClientFactory(organization_id=acme.id) for _ in range(3)]
    OAuthClientFactory(organization_id=globex.id)
    OAuthClientFactory()

    first, total = clients.list_clients(db_session, organization_id=acme.id, page=1, per_page=2)
    second, _ = clients.list_clients(db_session, organization_id=acme.id, page=2, per_page=2)

    assert total == 3
    assert [c.client_id for c in first + second] == [c.client_id for c in own]


def test_list_all_clients_lists_platform_and_organization_clients(db_session, acme):
    OAuthClientFactory(organization_id=acme.id)
    OAuthClientFactory()
    _, total = clients.list_all_clients(db_session, page=1, per_page=20)
    assert total == 2


def test_list_clients_without_organization_id_refuses_to_list(db_session):
    OAuthClientFactory()
    with pytest.raises(ValueError):
        clients.list_clients(db_session, organization_id=None, page=1, per_page=20)
