"""/api/v1/organizations/<org_id>/domains and /api/v1/domains/<id>/mark-verified: an organization claims its
email domains and proves them over DNS, against a real DNS server on loopback (tests/dns_server.py).
Who may call what, and another organization's domain being 404, are in the tenant-isolation matrix
(tests/api/test_tenant_isolation.py); here, what the calls do."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.models import AuditEvent, IdentityProvider, OrganizationDomain
from tests import factories
from tests.conftest import make_settings
from tests.dns_server import dns_zone  # noqa: F401 (a fixture)


@pytest.fixture
def settings(database_url, dns_zone):  # noqa: F811
    return make_settings(database_url, DNS_RESOLVER=dns_zone.resolver_setting, DNS_TIMEOUT_SECONDS=2)


@pytest.fixture
def acme(db_session, org, admin):
    return org, factories.session_token(admin)


@pytest.fixture
def globex(db_session):
    owner = factories.UserFactory(email="owner@globex.example")
    organization = factories.create_organization(db_session, owner=owner, slug="globex")
    return organization, factories.session_token(owner)


def base(organization) -> str:
    return f"/api/v1/organizations/{organization.id}/domains"


def connection(db_session, organization, *, enabled: bool = True) -> IdentityProvider:
    provider = IdentityProvider(kind="oidc", organization_id=organization.id, name=f"{organization.slug} SSO",
                                client_id="client", scopes=["openid"], enabled=enabled,
                                settings={"issuer": f"https://sso.{organization.slug}.example"})
    db_session.add(provider)
    db_session.commit()
    return provider


def claim(api, organization, token, name="acme.test") -> dict:
    response = api.post(base(organization), token=token, json={"domain": name})
    assert response.status == 201, response.body
    return response.data


def audit_events(db_session, action):
    return db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def test_claiming_a_domain_answers_its_representation_and_the_record_to_publish(api, acme, db_session):
    organization, token = acme
    data = claim(api, organization, token, "Acme.TEST")
    assert set(data) == {"id", "domain", "verified", "verified_at", "identity_provider_id", "auto_redirect",
                         "enforce_sso", "verification"}
    assert data["domain"] == "acme.test" and data["verified"] is False and data["verified_at"] is None
    assert data["identity_provider_id"] is None and data["auto_redirect"] is False and data["enforce_sso"] is False
    verification = data["verification"]
    assert verification["type"] == "TXT" and verification["name"] == "_gatehouse-challenge.acme.test"
    assert len(verification["value"]) >= 40
    [event] = audit_events(db_session, "domain.added")
    assert event.organization_id == organization.id and event.details == {"domain": "acme.test"}


def test_each_domain_gets_its_own_random_value(api, acme, globex):
    first = claim(api, acme[0], acme[1])
    second = claim(api, globex[0], globex[1])
    assert first["verification"]["value"] != second["verification"]["value"]


@pytest.mark.parametrize("name", ["gmail.com", "Outlook.com", "yahoo.co.uk", "proton.me"])
def test_a_public_mail_domain_is_refused(api, acme, db_session, name):
    organization, token = acme
    response = api.post(base(organization), token=token, json={"domain": name})
    assert response.status == 422 and "public mail" in response.body["error"]["details"]["domain"][0]
    assert db_session.scalar(select(OrganizationDomain)) is None


@pytest.mark.parametrize("name", ["localhost", "acme..test", "-acme.test", "acme.test.", "ac me.test", "acme.123",
                                  "x" * 64 + ".test"])
def test_a_malformed_domain_is_422(api, acme, name):
    organization, token = acme
    response = api.post(base(organization), token=token, json={"domain": name})
    assert response.status == 422 and "domain" in response.body["error"]["details"]


def test_claiming_the_same_domain_twice_is_409(api, acme):
    organization, token = acme
    claim(api, organization, token)
    response = api.post(base(organization), token=token, json={"domain": "ACME.test"})
    assert response.status == 409 and response.error_type == "CONFLICT"


def test_list_and_get_show_the_organizations_own_domains(api, acme, globex):
    organization, token = acme
    own = claim(api, organization, token)
    claim(api, globex[0], globex[1], "globex.test")
    listed = api.get(base(organization), token=token)
    assert listed.status == 200 and [d["id"] for d in listed.data] == [own["id"]]
    assert listed.body["meta"]["total"] == 1
    assert api.get(f"{base(organization)}/{own['id']}", token=token).data == own


def test_verify_with_the_right_record_marks_the_domain_verified(api, acme, db_session, dns_zone):
    organization, token = acme
    data = claim(api, organization, token)
    dns_zone.txt["_gatehouse-challenge.acme.test"] = ["v=spf1 -all", data["verification"]["value"]]
    response = api.post(f"{base(organization)}/{data['id']}/verify", token=token)
    assert response.status == 200, response.body
    assert response.data["verified"] is True and response.data["verified_at"]
    assert dns_zone.queries == ["_gatehouse-challenge.acme.test"]
    [event] = audit_events(db_session, "domain.verified")
    assert event.details == {"domain": "acme.test", "method": "dns"} and event.organization_id == organization.id


def test_verify_with_another_value_is_409_and_audited(api, acme, db_session, dns_zone):
    organization, token = acme
    data = claim(api, organization, token)
    dns_zone.txt["_gatehouse-challenge.acme.test"] = ["someone-elses-token"]
    response = api.post(f"{base(organization)}/{data['id']}/verify", token=token)
    assert response.status == 409 and response.error_type == "CONFLICT"
    assert "does not hold this domain's verification value" in response.body["message"]
    assert db_session.get(OrganizationDomain, uuid.UUID(data["id"])).verified_at is None
    [event] = audit_events(db_session, "domain.verification_failed")
    assert event.result == "failure" and event.details["reason"] == "wrong_value"


def test_verify_without_a_record_is_409(api, acme, db_session, dns_zone):
    organization, token = acme
    data = claim(api, organization, token)
    response = api.post(f"{base(organization)}/{data['id']}/verify", token=token)
    assert response.status == 409
    assert response.body["message"] == "There is no TXT record at _gatehouse-challenge.acme.test yet."
    assert dns_zone.queries == ["_gatehouse-challenge.acme.test"]
    assert audit_events(db_session, "domain.verification_failed")[0].details["reason"] == "no_record"


def test_verify_when_dns_fails_is_409_naming_the_lookup(api, acme, dns_zone):
    organization, token = acme
    data = claim(api, organization, token)
    dns_zone.failing = True
    response = api.post(f"{base(organization)}/{data['id']}/verify", token=token)
    assert response.status == 409 and "DNS lookup of _gatehouse-challenge.acme.test failed" in response.body["message"]


def test_a_domain_another_organization_verified_cannot_be_verified(api, acme, globex, db_session, dns_zone):
    theirs = claim(api, globex[0], globex[1], "acme.test")
    dns_zone.txt["_gatehouse-challenge.acme.test"] = [theirs["verification"]["value"]]
    assert api.post(f"{base(globex[0])}/{theirs['id']}/verify", token=globex[1]).status == 200
    organization, token = acme
    ours = claim(api, organization, token)
    dns_zone.txt["_gatehouse-challenge.acme.test"].append(ours["verification"]["value"])
    response = api.post(f"{base(organization)}/{ours['id']}/verify", token=token)
    assert response.status == 409 and response.body["message"] == "Another organization has verified this domain."
    assert db_session.get(OrganizationDomain, uuid.UUID(ours["id"])).verified_at is None
    assert audit_events(db_session, "domain.verification_failed")[0].details["reason"] == \
        "verified_by_another_organization"


def test_verifying_a_verified_domain_answers_it_without_asking_dns(api, acme, dns_zone):
    organization, token = acme
    data = claim(api, organization, token)
    dns_zone.txt["_gatehouse-challenge.acme.test"] = [data["verification"]["value"]]
    first = api.post(f"{base(organization)}/{data['id']}/verify", token=token)
    dns_zone.txt.clear()
    again = api.post(f"{base(organization)}/{data['id']}/verify", token=token)
    assert again.status == 200 and again.data == first.data and len(dns_zone.queries) == 1


def _verified(api, organization, token, dns_zone, name="acme.test") -> dict:
    data = claim(api, organization, token, name)
    dns_zone.txt[f"_gatehouse-challenge.{name}"] = [data["verification"]["value"]]
    response = api.post(f"{base(organization)}/{data['id']}/verify", token=token)
    assert response.status == 200, response.body
    return response.data


def test_patch_routes_the_domain_to_a_connection_and_enforces_sso(api, acme, db_session, dns_zone):
    organization, token = acme
    data = _verified(api, organization, token, dns_zone)
    provider = connection(db_session, organization)
    response = api.patch(f"{base(organization)}/{data['id']}", token=token,
                         json={"identity_provider_id": str(provider.id), "auto_redirect": True, "enforce_sso": True})
    assert response.status == 200, response.body
    assert response.data["identity_provider_id"] == str(provider.id)
    assert response.data["auto_redirect"] is True and response.data["enforce_sso"] is True
    [event] = audit_events(db_session, "domain.updated")
    assert event.details == {"domain": "acme.test", "identity_provider_id": str(provider.id), "auto_redirect": True,
                             "enforce_sso": True}


def test_patch_to_another_organizations_connection_is_422(api, acme, globex, db_session, dns_zone):
    organization, token = acme
    data = _verified(api, organization, token, dns_zone)
    theirs = connection(db_session, globex[0])
    response = api.patch(f"{base(organization)}/{data['id']}", token=token,
                         json={"identity_provider_id": str(theirs.id)})
    assert response.status == 422 and "identity_provider_id" in response.body["error"]["details"]
    assert db_session.get(OrganizationDomain, uuid.UUID(data["id"])).identity_provider_id is None


def test_enforce_sso_on_an_unverified_domain_is_409(api, acme, db_session):
    organization, token = acme
    data = claim(api, organization, token)
    provider = connection(db_session, organization)
    response = api.patch(f"{base(organization)}/{data['id']}", token=token,
                         json={"identity_provider_id": str(provider.id), "enforce_sso": True})
    assert response.status == 409 and response.body["message"] == "Verify the domain before enforcing single sign-on."
    assert db_session.get(OrganizationDomain, uuid.UUID(data["id"])).enforce_sso is False


@pytest.mark.parametrize("routed", ["none", "disabled"])
def test_enforce_sso_without_an_enabled_connection_is_409(api, acme, db_session, dns_zone, routed):
    organization, token = acme
    data = _verified(api, organization, token, dns_zone)
    body = {"enforce_sso": True}
    if routed == "disabled":
        body["identity_provider_id"] = str(connection(db_session, organization, enabled=False).id)
    response = api.patch(f"{base(organization)}/{data['id']}", token=token, json=body)
    assert response.status == 409 and "enabled connection" in response.body["message"]


def test_unrouting_an_enforcing_domain_is_409(api, acme, db_session, dns_zone):
    organization, token = acme
    data = _verified(api, organization, token, dns_zone)
    provider = connection(db_session, organization)
    path = f"{base(organization)}/{data['id']}"
    assert api.patch(path, token=token, json={"identity_provider_id": str(provider.id), "enforce_sso": True}).status \
        == 200
    assert api.patch(path, token=token, json={"identity_provider_id": None}).status == 409


def test_delete_gives_the_domain_up(api, acme, db_session):
    organization, token = acme
    data = claim(api, organization, token)
    response = api.delete(f"{base(organization)}/{data['id']}", token=token)
    assert response.status == 200
    assert db_session.get(OrganizationDomain, uuid.UUID(data["id"])) is None
    assert len(audit_events(db_session, "domain.deleted")) == 1


def test_a_platform_administrator_marks_a_domain_verified_without_dns(api, acme, db_session, dns_zone):
    organization, token = acme
    data = claim(api, organization, token)
    operator = factories.UserFactory(is_platform_admin=True)
    response = api.post(f"/api/v1/domains/{data['id']}/mark-verified", token=factories.session_token(operator))
    assert response.status == 200 and response.data["verified"] is True
    assert dns_zone.queries == []
    [event] = audit_events(db_session, "domain.verified")
    assert event.details == {"domain": "acme.test", "method": "manual"} and event.actor_user_id == operator.id


def test_only_platform_administrators_mark_domains_verified(api, acme, db_session, owner):
    organization, token = acme
    data = claim(api, organization, token)
    response = api.post(f"/api/v1/domains/{data['id']}/mark-verified", token=factories.session_token(owner))
    assert response.status == 403
    assert db_session.get(OrganizationDomain, uuid.UUID(data["id"])).verified_at is None


def test_marking_a_domain_another_organization_verified_is_409(api, acme, globex, dns_zone):
    _verified(api, globex[0], globex[1], dns_zone)
    data = claim(api, acme[0], acme[1])
    operator = factories.UserFactory(is_platform_admin=True)
    response = api.post(f"/api/v1/domains/{data['id']}/mark-verified", token=factories.session_token(operator))
    assert response.status == 409


@pytest.fixture
def enforcing(api, acme, db_session, dns_zone):
    organization, token = acme
    data = _verified(api, organization, token, dns_zone)
    provider = connection(db_session, organization)
    assert api.patch(f"{base(organization)}/{data['id']}", token=token,
                     json={"identity_provider_id": str(provider.id), "enforce_sso": True}).status == 200
    return data, provider


@pytest.mark.parametrize("method", ["DELETE", "PATCH"])
def test_a_connection_a_domain_enforces_sso_through_cannot_be_deleted_or_disabled(api, acme, enforcing, db_session,
                                                                                  method):
    organization, token = acme
    _, provider = enforcing
    response = api.request(method, f"/api/v1/organizations/{organization.id}/identity-providers/{provider.id}",
                           token=token, json={"enabled": False} if method == "PATCH" else None)
    assert response.status == 409 and response.body["error"]["details"] == {"enforcing_domains": ["acme.test"]}
    db_session.expire_all()
    assert db_session.get(IdentityProvider, provider.id).enabled is True


def test_once_enforcement_is_off_the_connection_goes_and_the_domain_is_unrouted(api, acme, enforcing, db_session):
    organization, token = acme
    data, provider = enforcing
    assert api.patch(f"{base(organization)}/{data['id']}", token=token, json={"enforce_sso": False}).status == 200
    deleted = api.delete(f"/api/v1/organizations/{organization.id}/identity-providers/{provider.id}", token=token)
    assert deleted.status == 200
    assert api.get(f"{base(organization)}/{data['id']}", token=token).data["identity_provider_id"] is None
