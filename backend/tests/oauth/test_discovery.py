"""Server metadata: OIDC Discovery 1.0 and RFC 8414, advertising exactly what is implemented."""

from __future__ import annotations

import pytest
from authlib.oauth2 import rfc8414, rfc9207
from authlib.oidc import discovery, rpinitiated

ISSUER = "https://login.example.com"

# Discovery is validated with an https issuer, as in production: RFC 8414 §2 and
# OIDC Discovery §3 require https for the issuer and the endpoints.
pytestmark = pytest.mark.settings(ISSUER=ISSUER)


@pytest.fixture
def openid_configuration(client) -> dict:
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


@pytest.fixture
def oauth_metadata(client) -> dict:
    response = client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_openid_configuration_validates_as_provider_metadata(openid_configuration):
    """OIDC Discovery 1.0 §3 (required members), RP-Initiated Logout 1.0 §2.1, RFC 9207 §3."""
    metadata = discovery.OpenIDProviderMetadata(openid_configuration)
    metadata.validate(metadata_classes=[rpinitiated.OpenIDProviderMetadata, rfc9207.AuthorizationServerMetadata])


def test_oauth_metadata_validates_as_authorization_server_metadata(oauth_metadata):
    """RFC 8414 §2 (metadata members), RFC 9207 §3 (authorization_response_iss_parameter_supported)."""
    rfc8414.AuthorizationServerMetadata(oauth_metadata).validate(
        metadata_classes=[rfc9207.AuthorizationServerMetadata])


@pytest.mark.parametrize("document", ["openid_configuration", "oauth_metadata"])
def test_issuer_is_the_configured_issuer(request, document):
    """OIDC Discovery 1.0 §4.3 and RFC 8414 §3.3: issuer MUST be identical to the issuer the metadata is for."""
    assert request.getfixturevalue(document)["issuer"] == ISSUER


@pytest.mark.parametrize("document", ["openid_configuration", "oauth_metadata"])
def test_metadata_advertises_exactly_the_implemented_features(request, document):
    """RFC 8414 §2 / OIDC Discovery 1.0 §3: each *_supported value is what the server actually does:
    code flow only, PKCE with S256 only (RFC 7636 §4.2, RFC 9700 §2.1.1), and iss in responses (RFC 9207 §2)."""
    metadata = request.getfixturevalue(document)
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["response_modes_supported"] == ["query"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert sorted(metadata["grant_types_supported"]) == ["authorization_code", "client_credentials", "refresh_token"]
    assert sorted(metadata["token_endpoint_auth_methods_supported"]) == [
        "client_secret_basic", "client_secret_post", "none", "private_key_jwt"]
    assert sorted(metadata["introspection_endpoint_auth_methods_supported"]) == [
        "client_secret_basic", "client_secret_post", "private_key_jwt"]
    assert sorted(metadata["revocation_endpoint_auth_methods_supported"]) == [
        "client_secret_basic", "client_secret_post", "none", "private_key_jwt"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert set(metadata["scopes_supported"]) >= {"openid", "profile", "email", "offline_access"}
    for implicit_or_hybrid in ("token", "id_token", "code id_token", "code token"):
        assert implicit_or_hybrid not in metadata["response_types_supported"]
    assert "password" not in metadata["grant_types_supported"]
    assert "implicit" not in metadata["grant_types_supported"]


@pytest.mark.parametrize("document", ["openid_configuration", "oauth_metadata"])
def test_endpoints_are_under_the_issuer(request, document):
    """RFC 8414 §2: authorization, token, JWKS, introspection (RFC 7662 §4) and revocation (RFC 7009 §5) endpoints."""
    metadata = request.getfixturevalue(document)
    assert metadata["authorization_endpoint"] == f"{ISSUER}/oauth2/authorize"
    assert metadata["token_endpoint"] == f"{ISSUER}/oauth2/token"
    assert metadata["jwks_uri"] == f"{ISSUER}/oauth2/jwks"
    assert metadata["introspection_endpoint"] == f"{ISSUER}/oauth2/introspect"
    assert metadata["revocation_endpoint"] == f"{ISSUER}/oauth2/revoke"


def test_openid_configuration_has_oidc_members(openid_configuration):
    """OIDC Discovery 1.0 §3: userinfo_endpoint, subject types, id_token algorithms;
    RP-Initiated Logout 1.0 §2.1: end_session_endpoint."""
    assert openid_configuration["userinfo_endpoint"] == f"{ISSUER}/oauth2/userinfo"
    assert openid_configuration["end_session_endpoint"] == f"{ISSUER}/oauth2/logout"
    assert openid_configuration["subject_types_supported"] == ["public"]
    assert "RS256" in openid_configuration["id_token_signing_alg_values_supported"]  # OIDC Discovery §3: REQUIRED
    assert "ES256" in openid_configuration["id_token_signing_alg_values_supported"]
    assert "none" not in openid_configuration["id_token_signing_alg_values_supported"]
    # Defaults that would claim unimplemented features must be turned off explicitly.
    assert openid_configuration["request_uri_parameter_supported"] is False
    assert openid_configuration["request_parameter_supported"] is False
    assert openid_configuration["claims_parameter_supported"] is False


def test_oauth_metadata_is_the_oauth_subset(openid_configuration, oauth_metadata):
    """RFC 8414 §2: the same values as the OpenID document for every member both define."""
    for key, value in oauth_metadata.items():
        assert openid_configuration[key] == value, key
    assert "userinfo_endpoint" not in oauth_metadata  # not an RFC 8414 member
