"""services.domains directly: the DNS lookup (federation/dns.py against a real DNS server on loopback), the
sign-in decisions (enforced SSO, home-realm routing, what a connection may assert), and a caller demoted
while waiting for the lock. The API's behaviour is in tests/api/test_organization_domains.py."""

from __future__ import annotations

import pytest

from app import errors
from app.federation.dns import TxtResolver
from app.models import IdentityProvider
from app.services import domains
from app.services.actor import Actor
from tests import factories
from tests.dns_server import dns_zone  # noqa: F401 (a fixture)


def resolver(zone) -> TxtResolver:
    return TxtResolver(zone.resolver_setting, timeout=2)


def test_txt_records_joins_each_records_strings(dns_zone):  # noqa: F811
    long_value = "x" * 300  # more than one 255-byte character-string (RFC 1035 §3.3.14)
    dns_zone.txt["_gatehouse-challenge.acme.test"] = ["first", long_value]
    assert sorted(resolver(dns_zone).txt_records("_gatehouse-challenge.acme.test")) == ["first", long_value]


def test_txt_records_of_an_unknown_name_is_empty(dns_zone):  # noqa: F811
    assert resolver(dns_zone).txt_records("_gatehouse-challenge.nowhere.test") == []


def test_a_failing_resolver_raises_lookup_failed(dns_zone):  # noqa: F811
    dns_zone.failing = True
    with pytest.raises(domains.LookupFailed):
        resolver(dns_zone).txt_records("_gatehouse-challenge.acme.test")


def connection(db_session, organization, *, enabled: bool = True) -> IdentityProvider:
    provider = IdentityProvider(kind="oidc", organization_id=organization.id, name="Acme SSO", client_id="c",
                                scopes=["openid"], enabled=enabled, settings={"issuer": "https://sso.acme.test"})
    db_session.add(provider)
    db_session.commit()
    return provider


@pytest.fixture
def acme(db_session, owner):
    return factories.create_organization(db_session, owner=owner, slug="acme-test")


def test_sign_in_refusal_holds_for_an_enforcing_domain_whoever_asks(db_session, acme):
    factories.verified_domain(db_session, acme, "acme.test", connection(db_session, acme), enforce_sso=True)
    person = factories.UserFactory(email="ada@acme.test")
    assert isinstance(domains.sign_in_refusal(db_session, email="ADA@Acme.test", user=person), domains.SSORequired)
    # No account yet (registration), the same answer.
    assert isinstance(domains.sign_in_refusal(db_session, email="new@acme.test", user=None), domains.SSORequired)


def test_sign_in_refusal_spares_platform_administrators(db_session, acme):
    factories.verified_domain(db_session, acme, "acme.test", connection(db_session, acme), enforce_sso=True)
    operator = factories.UserFactory(email="ops@acme.test", is_platform_admin=True)
    assert domains.sign_in_refusal(db_session, email=operator.email, user=operator) is None


@pytest.mark.parametrize("email", ["ada@other.test", "ada@sub.acme.test"])
def test_sign_in_refusal_is_none_outside_the_domain(db_session, acme, email):
    factories.verified_domain(db_session, acme, "acme.test", connection(db_session, acme), enforce_sso=True)
    assert domains.sign_in_refusal(db_session, email=email, user=None) is None


def test_sign_in_refusal_is_none_without_enforcement(db_session, acme):
    factories.verified_domain(db_session, acme, "acme.test", connection(db_session, acme), auto_redirect=True)
    assert domains.sign_in_refusal(db_session, email="ada@acme.test", user=None) is None


def test_routed_connection_needs_verified_auto_redirect_and_an_enabled_connection(db_session, acme):
    provider = connection(db_session, acme)
    domain = factories.verified_domain(db_session, acme, "acme.test", provider)
    assert domains.routed_connection(db_session, "ada@acme.test") is None
    domain.auto_redirect = True
    db_session.commit()
    assert domains.routed_connection(db_session, "ada@acme.test") == provider
    provider.enabled = False
    db_session.commit()
    assert domains.routed_connection(db_session, "ada@acme.test") is None


def test_an_unverified_domain_routes_nobody(db_session, acme):
    domain = factories.verified_domain(db_session, acme, "acme.test", connection(db_session, acme),
                                       auto_redirect=True)
    domain.verified_at = None
    db_session.commit()
    assert domains.routed_connection(db_session, "ada@acme.test") is None


def test_a_connection_asserts_emails_of_its_organizations_verified_domains_only(db_session, acme, admin):
    provider = connection(db_session, acme)
    factories.verified_domain(db_session, acme, "acme.test")
    other = factories.create_organization(db_session, owner=admin, slug="globex")
    factories.verified_domain(db_session, other, "globex.test")
    domains.require_assertable_email(db_session, provider=provider, email="ada@acme.test")
    for email in ("eve@globex.test", "eve@gmail.com", None):
        with pytest.raises(errors.FederationFailed) as raised:
            domains.require_assertable_email(db_session, provider=provider, email=email)
        assert raised.value.reason == "email_domain_not_verified"


def test_a_caller_demoted_while_waiting_cannot_add_a_domain(db_session, acme, owner, admin):
    factories.add_member(db_session, acme, admin, "admin")
    access = factories.access_of(db_session, admin, acme)
    factories.demote_meanwhile(db_session, acme, admin)
    with pytest.raises(errors.PermissionDenied):
        domains.add_domain(db_session, actor=Actor(user=admin), access=access, domain="acme.test")
