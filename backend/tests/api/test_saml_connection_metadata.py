"""A saml connection configured from its IdP's metadata (SAML Metadata §2.4.3), given as XML or fetched from a
URL through the SSRF guard, on the platform API and an organization's own; the SSO binding; the subject
attribute; the SLS URL in the representation."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app import create_app
from app.models import IdentityProvider
from tests import factories
from tests.conftest import Api, make_settings
from tests.saml_idp import TestIdP, key_and_certificate

PLATFORM = "/api/v1/identity-providers"
IDP = TestIdP()


@pytest.fixture
def admin_token(db_session) -> str:
    return factories.session_token(factories.UserFactory(is_platform_admin=True))


@pytest.fixture
def acme(db_session):
    admin = factories.UserFactory(email="admin@acme.example")
    organization = factories.create_organization(db_session, owner=admin, slug="acme")
    return f"/api/v1/organizations/{organization.id}/identity-providers", factories.session_token(admin)


def named(**body: Any) -> dict[str, Any]:
    return {"kind": "saml", "name": "Corp SAML"} | body


def test_org_admin_connects_an_idp_from_its_metadata_xml(api, acme, settings):
    base, token = acme
    response = api.post(base, token=token, json=named(idp_metadata_xml=IDP.metadata()))
    assert response.status == 201, response.body
    data = response.data
    assert data["idp_entity_id"] == IDP.entity_id and data["idp_sso_url"] == IDP.sso_url
    assert data["idp_sso_binding"] == "HTTP-Redirect" and data["idp_slo_url"] == IDP.slo_url
    assert [c.replace("\n", "") for c in data["idp_certificates"]] == [IDP.certificate_pem.replace("\n", "")]
    assert data["sls_url"] == f"{settings.ISSUER}/saml/{data['id']}/sls"
    assert "idp_metadata_xml" not in data


def test_platform_admin_connects_an_idp_from_its_metadata_url(api, admin_token, upstream):
    """The metadata is fetched from a real HTTP server, through the guarded fetcher."""
    _, next_certificate = key_and_certificate("idp-next.corp.test")
    upstream.serve("/saml/metadata", IDP.metadata(certificates=[IDP.certificate_pem, next_certificate]).encode(),
                   headers={"Content-Type": "application/samlmetadata+xml"})
    response = api.post(PLATFORM, token=admin_token, json=named(idp_metadata_url=f"{upstream.url}/saml/metadata"))
    assert response.status == 201, response.body
    assert len(response.data["idp_certificates"]) == 2
    assert [r.path for r in upstream.received] == ["/saml/metadata"]


def test_metadata_with_only_the_post_binding_selects_it(api, admin_token):
    response = api.post(PLATFORM, token=admin_token, json=named(idp_metadata_xml=IDP.metadata(
        sso_bindings=("HTTP-POST",), slo=False)))
    assert response.status == 201, response.body
    assert response.data["idp_sso_binding"] == "HTTP-POST" and response.data["idp_slo_url"] is None


def test_metadata_with_both_bindings_prefers_redirect(api, admin_token):
    response = api.post(PLATFORM, token=admin_token, json=named(idp_metadata_xml=IDP.metadata(
        sso_bindings=("HTTP-POST", "HTTP-Redirect"))))
    assert response.data["idp_sso_binding"] == "HTTP-Redirect"


def test_patch_with_metadata_replaces_the_idp_fields(api, acme):
    base, token = acme
    created = api.post(base, token=token, json=named(idp_metadata_xml=IDP.metadata())).data
    moved = IDP.metadata(entity_id="https://idp.corp.test/saml2", slo=False)
    response = api.patch(f"{base}/{created['id']}", token=token, json={"idp_metadata_xml": moved})
    assert response.status == 200, response.body
    assert response.data["idp_entity_id"] == "https://idp.corp.test/saml2" and response.data["idp_slo_url"] is None


CERTLESS = TestIdP().metadata(certificates=[])


@pytest.mark.parametrize(("body", "field", "says"), [
    (named(idp_metadata_xml="<html>not metadata</html>"), "idp_metadata_xml", "no identity provider"),
    (named(idp_metadata_xml="not xml at all <"), "idp_metadata_xml", "Not SAML metadata"),
    (named(idp_metadata_xml=CERTLESS), "idp_metadata_xml", "no signing certificate"),
    (named(idp_metadata_xml=IDP.metadata(sso_bindings=())), "idp_metadata_xml", "no SingleSignOnService"),
    (named(idp_metadata_xml='<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'),
     "idp_metadata_xml", "Not SAML metadata"),
    (named(idp_metadata_xml=IDP.metadata(), idp_metadata_url="https://idp.corp.test/metadata"),
     "idp_metadata_url", "one way"),
    (named(idp_metadata_xml=IDP.metadata(), idp_entity_id="https://other.test"), "idp_entity_id", "metadata"),
    (named(idp_metadata_url="ftp://idp.corp.test/metadata"), "idp_metadata_url", ""),
    (named(idp_entity_id=IDP.entity_id, idp_sso_url=IDP.sso_url, idp_certificates=[IDP.certificate_pem],
           idp_sso_binding="SOAP"), "idp_sso_binding", ""),
    ({"kind": "github", "name": "GitHub", "client_id": "x", "client_secret": "y",
      "idp_metadata_xml": IDP.metadata()}, "idp_metadata_xml", "Not a setting of github"),
])
def test_unusable_metadata_is_422_on_its_field_and_creates_nothing(api, admin_token, db_session, body, field, says):
    response = api.post(PLATFORM, token=admin_token, json=body)
    assert (response.status, response.error_type) == (422, "VALIDATION_ERROR"), response.body
    assert says in " ".join(response.body["error"]["details"][field])
    assert db_session.scalar(select(IdentityProvider)) is None


def test_a_metadata_url_answering_404_is_422(api, admin_token, upstream, db_session):
    response = api.post(PLATFORM, token=admin_token, json=named(idp_metadata_url=f"{upstream.url}/nothing"))
    assert response.status == 422
    assert "HTTP 404" in response.body["error"]["details"]["idp_metadata_url"][0]


def test_a_metadata_url_on_a_private_network_is_refused_unfetched(database_url, db_session, admin_token, upstream):
    upstream.serve("/saml/metadata", IDP.metadata().encode())
    # As production: upstream URLs may not point at private networks.
    guarded = Api(create_app(make_settings(database_url, FEDERATION_ALLOW_PRIVATE_NETWORKS=False)).test_client(),
                  db_session)
    response = guarded.post(PLATFORM, token=admin_token, json=named(idp_metadata_url=f"{upstream.url}/saml/metadata"))
    assert response.status == 422
    assert "private, loopback or link-local" in response.body["error"]["details"]["idp_metadata_url"][0]
    assert upstream.received == []


def test_the_subject_attribute_may_be_mapped(api, admin_token):
    response = api.post(PLATFORM, token=admin_token, json=named(
        idp_metadata_xml=IDP.metadata(), attribute_mapping={"subject": "employeeNumber"}))
    assert response.status == 201, response.body
    assert response.data["attribute_mapping"] == {"subject": "employeeNumber"}
