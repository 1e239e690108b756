"""Signing in through a SAML 2.0 connection: /federation/<id>/start sends a signed AuthnRequest, the IdP of
tests/saml_idp.py answers with a Response built and signed with xmlsec, posted to the real ACS. Each
refusal is one check of SAML Core §2-3 / Profiles §4.1.4 that the ACS must make."""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree
from redis import Redis
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from sqlalchemy import func, select

from app.extensions import field_cipher
from app.models import ExternalIdentity, IdentityProvider, Membership, SAMLAssertionUse, User, UserSession
from app.services.identity_providers import DEFAULT_SAML_SETTINGS, new_sp_key_pair
from tests import factories
from tests.oauth.helpers import Redirect, audit_events, authorization_params, is_consent_page, make_pkce, \
    parse_page, query_of, store_under_a_dropped_key, verify_jwt
from tests.saml_idp import TRANSIENT, TestIdP, key_and_certificate

SAMLP = "{urn:oasis:names:tc:SAML:2.0:protocol}"


@pytest.fixture
def idp() -> TestIdP:
    return TestIdP()


@pytest.fixture
def make_connection(app, db_session, idp) -> Callable[..., IdentityProvider]:
    def create(organization_id: Any = None, **settings: Any) -> IdentityProvider:
        private_key, certificate = new_sp_key_pair("test SP")
        with app.app_context():
            ciphertext = field_cipher().encrypt(private_key)
        values = DEFAULT_SAML_SETTINGS | {"idp_entity_id": idp.entity_id, "idp_sso_url": idp.sso_url,
                                          "idp_certificates": [idp.certificate_pem],
                                          "sp_certificate": certificate} | settings
        provider = IdentityProvider(kind="saml", name="Corp SAML", scopes=[], trust_email=False, allow_signup=True,
                                    settings=values, sp_private_key_ciphertext=ciphertext,
                                    organization_id=organization_id)
        db_session.add(provider)
        db_session.commit()
        return provider
    return create


@pytest.fixture
def connection(make_connection) -> IdentityProvider:
    return make_connection()


class SAMLRoundTrip:
    """A browser's trip: start (the AuthnRequest), then a Response posted to the ACS."""

    def __init__(self, browser, provider: IdentityProvider, idp: TestIdP, issuer: str) -> None:
        self.browser, self.provider, self.idp = browser, provider, idp
        self.acs_url = provider.saml_url(issuer, "acs")
        self.entity_id = provider.saml_url(issuer, "metadata")

    def start(self, **query: str) -> dict[str, str]:
        """The query the browser is sent to the IdP with, and the AuthnRequest's ID."""
        response = self.browser.http.get(f"/federation/{self.provider.id}/start", query_string=query)
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        assert response.location.startswith(self.idp.sso_url + "?")
        sent = {k: v[0] for k, v in parse_qs(urlsplit(response.location).query).items()}
        request = etree.fromstring(zlib.decompress(base64.b64decode(sent["SAMLRequest"]), -15))
        return sent | {"request_id": request.get("ID"), "request_xml": etree.tostring(request).decode()}

    def assertion(self, sent: dict[str, str] | None, **options: Any) -> str:
        values = {"audience": self.entity_id, "recipient": self.acs_url,
                  "in_response_to": sent["request_id"] if sent else None,
                  "attributes": {"email": ["pat@corp.example"], "name": ["Pat Corp"]}} | options
        return self.idp.assertion(**values)

    def post(self, saml_response: str, relay_state: str | None):
        form = {"SAMLResponse": saml_response} | ({"RelayState": relay_state} if relay_state else {})
        return self.browser.http.post(f"/saml/{self.provider.id}/acs", data=form)

    def answer(self, sent: dict[str, str] | None, *, signed: bool = True, sign: dict[str, Any] | None = None,
               destination: str | None = None, response_in_response_to: Any = "same", **assertion: Any):
        xml = self.assertion(sent, **assertion)
        body = self.idp.sign(xml, **(sign or {})) if signed else xml
        in_response_to = (sent["request_id"] if sent else None) if response_in_response_to == "same" \
            else response_in_response_to
        saml_response = self.idp.response(body, destination=destination or self.acs_url,
                                          in_response_to=in_response_to)
        return self.post(saml_response, sent["RelayState"] if sent else None)


@pytest.fixture
def via(browser, connection, idp, settings) -> SAMLRoundTrip:
    return SAMLRoundTrip(browser, connection, idp, settings.ISSUER)


def count(db_session, model) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(model))


def assert_refused(response, db_session, *, reason_prefix: str) -> None:
    """Back on the sign-in page; no account, identity or session; the reason audited."""
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "sign" in parse_page(response).text.lower()
    assert count(db_session, User) == 0
    assert count(db_session, ExternalIdentity) == 0
    assert count(db_session, UserSession) == 0
    reasons = [event.details["reason"] for event in audit_events(db_session, "federation.failed")]
    assert reasons and reasons[-1].startswith(reason_prefix), reasons


# --- the AuthnRequest and our metadata ------------------------------------------------------------------

def test_start_when_no_key_decrypts_the_connections_key_is_refused_plainly(via, db_session):
    """No AuthnRequest can be signed: the sign-in page says so (not a 500), the reason audited."""
    store_under_a_dropped_key(db_session, via.provider, "sp_private_key_ciphertext")
    response = via.browser.http.get(f"/federation/{via.provider.id}/start")
    assert "is not available right now" in parse_page(response).text
    assert_refused(response, db_session, reason_prefix="secret_undecryptable")


def test_a_response_when_no_key_decrypts_the_connections_key_is_refused_plainly(via, db_session):
    """The key went between the AuthnRequest and the IdP's Response: the Response is refused plainly, not a 500."""
    sent = via.start()
    store_under_a_dropped_key(db_session, via.provider, "sp_private_key_ciphertext")
    assert_refused(via.answer(sent), db_session, reason_prefix="secret_undecryptable")


def test_start_sends_a_signed_authn_request_with_an_opaque_relay_state(via, db_session):
    sent = via.start(next="https://evil.example/")
    assert sent["SigAlg"] == C.RSA_SHA256 and sent["Signature"]
    assert "evil.example" not in sent["RelayState"] and len(sent["RelayState"]) >= 32
    request = etree.fromstring(sent["request_xml"])
    assert request.get("AssertionConsumerServiceURL") == via.acs_url
    assert request.find("{urn:oasis:names:tc:SAML:2.0:assertion}Issuer").text == via.entity_id
    # The Redirect binding's signature (SAML Bindings §3.4.4.1) verifies with our published certificate.
    signed_query = "&".join(f"{k}={v}" for k, v in [
        ("SAMLRequest", OneLogin_Saml2_Utils.escape_url(sent["SAMLRequest"])),
        ("RelayState", OneLogin_Saml2_Utils.escape_url(sent["RelayState"])),
        ("SigAlg", OneLogin_Saml2_Utils.escape_url(sent["SigAlg"]))])
    assert OneLogin_Saml2_Utils.validate_binary_sign(signed_query, base64.b64decode(sent["Signature"]),
                                                     via.provider.settings["sp_certificate"], C.RSA_SHA256)


def test_metadata_publishes_entity_id_acs_and_signing_certificate(via, browser):
    response = browser.http.get(f"/saml/{via.provider.id}/metadata")
    assert response.status_code == 200 and response.mimetype == "application/samlmetadata+xml"
    root = etree.fromstring(response.data)
    assert root.get("entityID") == via.entity_id
    md = "{urn:oasis:names:tc:SAML:2.0:metadata}"
    assert root.find(f".//{md}AssertionConsumerService").get("Location") == via.acs_url
    certificate = root.find(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate").text
    assert certificate.strip() in via.provider.settings["sp_certificate"].replace("\n", "")


def test_metadata_when_no_key_decrypts_the_connections_key_is_503(via, browser, db_session):
    """The connection cannot sign anything, so it is not offered to an IdP either: a plain 503, not a 500."""
    store_under_a_dropped_key(db_session, via.provider, "sp_private_key_ciphertext")
    response = browser.http.get(f"/saml/{via.provider.id}/metadata")
    assert response.status_code == 503 and response.mimetype == "text/plain"
    assert "is not available right now" in response.get_data(as_text=True)


def test_metadata_of_an_unknown_connection_is_404(browser):
    assert browser.http.get("/saml/00000000-0000-0000-0000-000000000000/metadata").status_code == 404


# --- the Response at the ACS ----------------------------------------------------------------------------

def test_acs_signs_in_and_creates_the_account_just_in_time(via, db_session):
    response = via.answer(via.start())
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    user = db_session.scalar(select(User))
    assert user.email == "pat@corp.example" and user.name == "Pat Corp" and user.password_hash is None
    identity = db_session.scalar(select(ExternalIdentity))
    assert identity.subject == "corp-user-1" and identity.provider_id == via.provider.id


def test_the_accepted_assertion_is_recorded_in_the_shared_store(via, db_session, settings):
    """Redis when REDIS_URL is set (the suite runs both ways), the database otherwise: every instance sees it."""
    assert via.answer(via.start(), assertion_id="_recorded").status_code == 200
    if settings.REDIS_URL:
        key = f"{settings.RATELIMIT_KEY_PREFIX}:saml-assertion:{via.provider.id}:_recorded"
        assert Redis.from_url(settings.REDIS_URL).exists(key) == 1
        assert count(db_session, SAMLAssertionUse) == 0
    else:
        assert db_session.scalars(select(SAMLAssertionUse.assertion_id)).all() == ["_recorded"]


def test_authorization_through_saml_issues_an_id_token(via, web_client, exchange, client, db_session):
    pkce = make_pkce()
    params = authorization_params(web_client, pkce=pkce, idp_hint=str(via.provider.id))
    response = via.browser.authorize(params)
    assert response.status_code == 302 and response.location.startswith(f"/federation/{via.provider.id}/start?")
    start = via.browser.http.get(response.location)
    sent = {k: v[0] for k, v in parse_qs(urlsplit(start.location).query).items()}
    request_id = etree.fromstring(zlib.decompress(base64.b64decode(sent["SAMLRequest"]), -15)).get("ID")
    back = via.answer(sent | {"request_id": request_id})
    assert back.status_code == 302 and back.location.startswith("/oauth2/authorize?")
    consent = via.browser.http.get(back.location)
    assert is_consent_page(consent)
    answer = via.browser.decide(consent, "allow")
    redirect = Redirect(response=answer, location=answer.location, params=query_of(answer.location),
                        client=web_client, redirect_uri=params["redirect_uri"], pkce=pkce, nonce=params["nonce"])
    claims = verify_jwt(client, exchange(redirect).get_json()["id_token"]).claims
    assert claims["idp"] == str(via.provider.id) and claims["amr"] == ["fed"]
    assert claims["email"] == "pat@corp.example"


def test_acs_accepts_either_of_two_pinned_certificates_during_rollover(make_connection, browser, settings, idp,
                                                                       db_session):
    new_key, new_certificate = key_and_certificate("idp-next.corp.test")
    connection = make_connection(idp_certificates=[idp.certificate_pem, new_certificate])
    via = SAMLRoundTrip(browser, connection, idp, settings.ISSUER)
    assert via.answer(via.start()).status_code == 200
    assert via.answer(via.start(), subject="corp-user-2", attributes={"email": ["sam@corp.example"]},
                      sign={"key_pem": new_key, "certificate_pem": new_certificate}).status_code == 200


def test_acs_refuses_an_unsigned_assertion(via, db_session):
    assert_refused(via.answer(via.start(), signed=False), db_session, reason_prefix="saml_invalid")


def test_acs_refuses_an_assertion_signed_by_an_unpinned_certificate(via, db_session):
    stranger_key, stranger_certificate = key_and_certificate("idp.corp.test")
    response = via.answer(via.start(), sign={"key_pem": stranger_key, "certificate_pem": stranger_certificate})
    assert_refused(response, db_session, reason_prefix="saml_invalid")


def test_acs_refuses_a_sha1_signature(via, db_session):
    response = via.answer(via.start(), sign={"algorithm": C.RSA_SHA1, "digest": C.SHA1})
    assert_refused(response, db_session, reason_prefix="saml_invalid")


def test_acs_refuses_a_tampered_assertion(via, db_session):
    sent = via.start()
    signed = via.idp.sign(via.assertion(sent)).replace(b"pat@corp.example", b"boss@corp.example")
    response = via.post(via.idp.response(signed, destination=via.acs_url, in_response_to=sent["request_id"]),
                        sent["RelayState"])
    assert_refused(response, db_session, reason_prefix="saml_invalid")


def test_acs_refuses_two_assertions(via, db_session):
    sent = via.start()
    first = via.idp.sign(via.assertion(sent))
    second = via.idp.sign(via.assertion(sent, subject="corp-admin"))
    response = via.post(via.idp.response(first, second, destination=via.acs_url, in_response_to=sent["request_id"]),
                        sent["RelayState"])
    assert_refused(response, db_session, reason_prefix="saml_invalid")


def test_acs_refuses_a_wrapped_signature(via, db_session):
    """XML signature wrapping: the signed assertion hidden in an Extensions element, an unsigned forged one
    where the SP reads."""
    sent = via.start()
    signed = via.idp.sign(via.assertion(sent)).decode()
    forged = via.assertion(sent, subject="corp-admin")
    xml = base64.b64decode(via.idp.response(forged, destination=via.acs_url, in_response_to=sent["request_id"]))
    wrapped = xml.decode().replace("<samlp:Status>", f"<samlp:Extensions>{signed}</samlp:Extensions><samlp:Status>")
    response = via.post(base64.b64encode(wrapped.encode()).decode(), sent["RelayState"])
    assert_refused(response, db_session, reason_prefix="saml_invalid")


def test_acs_refuses_another_audience(via, db_session):
    response = via.answer(via.start(), audience="https://other-sp.example/metadata")
    assert_refused(response, db_session, reason_prefix="saml_invalid")


@pytest.mark.parametrize("suffix", ["/extra", "x"])
def test_acs_refuses_a_destination_that_only_starts_with_ours(via, db_session, suffix):
    response = via.answer(via.start(), destination=via.acs_url + suffix)
    assert_refused(response, db_session, reason_prefix="saml_destination")


def test_acs_refuses_a_recipient_that_only_contains_ours(via, db_session):
    response = via.answer(via.start(), recipient=via.acs_url + "/extra")
    assert_refused(response, db_session, reason_prefix="saml_")


@pytest.mark.parametrize("where", ["both", "response", "assertion"])
def test_acs_refuses_a_missing_in_response_to(via, db_session, where):
    sent = via.start()
    options: dict[str, Any] = {}
    if where in ("both", "response"):
        options["response_in_response_to"] = None
    if where in ("both", "assertion"):
        options["in_response_to"] = None
    assert_refused(via.answer(sent, **options), db_session, reason_prefix="saml_in_response_to")


def test_acs_refuses_an_in_response_to_of_another_request(via, db_session):
    via.start()
    other = via.start()
    response = via.answer(other, in_response_to="_another", response_in_response_to="_another")
    assert_refused(response, db_session, reason_prefix="saml_invalid")


def test_acs_refuses_an_expired_assertion(via, db_session):
    past = datetime.now(UTC) - timedelta(minutes=3)
    response = via.answer(via.start(), not_before=past - timedelta(minutes=5), not_on_or_after=past)
    assert_refused(response, db_session, reason_prefix="saml_invalid")


def test_acs_refuses_a_not_before_beyond_two_minutes_of_skew(via, db_session):
    response = via.answer(via.start(), not_before=datetime.now(UTC) + timedelta(minutes=3))
    assert_refused(response, db_session, reason_prefix="saml_invalid")


def test_acs_accepts_a_not_before_within_two_minutes_of_skew(via, db_session):
    response = via.answer(via.start(), not_before=datetime.now(UTC) + timedelta(seconds=60))
    assert response.status_code == 200


def test_acs_refuses_a_replayed_assertion(via, db_session):
    sent = via.start()
    assertion = via.idp.sign(via.assertion(sent, assertion_id="_replayed"))
    assert via.post(via.idp.response(assertion, destination=via.acs_url, in_response_to=sent["request_id"]),
                    sent["RelayState"]).status_code == 200
    db_session.query(UserSession).delete()
    db_session.query(ExternalIdentity).delete()
    db_session.query(User).delete()
    db_session.commit()
    # Even under a fresh request of its own, the same assertion is refused.
    again = via.start()
    replay = via.idp.sign(via.assertion(again, assertion_id="_replayed"))
    response = via.post(via.idp.response(replay, destination=via.acs_url, in_response_to=again["request_id"]),
                        again["RelayState"])
    assert_refused(response, db_session, reason_prefix="saml_replayed")


def test_acs_refuses_a_relay_state_used_twice(via, db_session):
    sent = via.start()
    assert via.answer(sent).status_code == 200
    db_session.query(UserSession).delete()
    db_session.query(ExternalIdentity).delete()
    db_session.query(User).delete()
    db_session.commit()
    assert_refused(via.answer(sent, assertion_id="_fresh"), db_session, reason_prefix="state_expired")


def test_acs_refuses_a_transient_name_id(via, db_session):
    assert_refused(via.answer(via.start(), name_id_format=TRANSIENT), db_session, reason_prefix="saml_subject")


def test_acs_refuses_an_unsolicited_response_by_default(via, db_session):
    assert_refused(via.answer(None), db_session, reason_prefix="saml_unsolicited")


def test_acs_accepts_an_unsolicited_response_when_allowed_and_lands_on_the_fixed_page(make_connection, browser,
                                                                                        settings, idp, db_session):
    via = SAMLRoundTrip(browser, make_connection(allow_idp_initiated=True), idp, settings.ISSUER)
    response = via.answer(None)
    assert response.status_code == 200 and response.location is None
    assert count(db_session, UserSession) == 1


def test_acs_refuses_an_unsolicited_response_claiming_to_answer_a_request(make_connection, browser, settings, idp,
                                                                         db_session):
    via = SAMLRoundTrip(browser, make_connection(allow_idp_initiated=True), idp, settings.ISSUER)
    response = via.answer({"request_id": "_made_up", "RelayState": ""})
    assert_refused(response, db_session, reason_prefix="saml_")


def test_a_transient_name_id_is_accepted_when_a_subject_attribute_is_mapped(make_connection, browser, settings, idp,
                                                                          db_session):
    """SAML Core §8.3.8: a transient NameID is new every time; the mapped attribute is the lasting subject."""
    via = SAMLRoundTrip(browser, make_connection(attribute_mapping={"subject": "employeeNumber"}), idp,
                        settings.ISSUER)
    attributes = {"email": ["pat@corp.example"], "employeeNumber": ["E-1042"]}
    assert via.answer(via.start(), name_id_format=TRANSIENT, subject="_t1", attributes=attributes).status_code == 200
    db_session.query(UserSession).delete()
    db_session.commit()
    assert via.answer(via.start(), name_id_format=TRANSIENT, subject="_t2", attributes=attributes).status_code == 200
    assert [i.subject for i in db_session.scalars(select(ExternalIdentity))] == ["E-1042"]
    assert count(db_session, User) == 1


def test_a_mapped_subject_attribute_that_is_missing_is_refused(make_connection, browser, settings, idp, db_session):
    via = SAMLRoundTrip(browser, make_connection(attribute_mapping={"subject": "employeeNumber"}), idp,
                        settings.ISSUER)
    assert_refused(via.answer(via.start()), db_session, reason_prefix="saml_subject")


# --- the HTTP-POST binding for the AuthnRequest (SAML Bindings §3.5) ----------------------------------------

def test_post_binding_start_is_a_form_to_the_idp_with_a_signed_authn_request(make_connection, browser, settings,
                                                                             idp, db_session):
    """Bindings §3.5.4: the AuthnRequest base64 in a SAMLRequest form field, signed inside the XML (enveloped),
    the RelayState beside it; the page submits itself with a script of our origin (the CSP allows no inline
    script), and has a button without JavaScript."""
    via = SAMLRoundTrip(browser, make_connection(idp_sso_binding="HTTP-POST"), idp, settings.ISSUER)
    page = browser.http.get(f"/federation/{via.provider.id}/start")
    assert page.status_code == 200
    form = parse_page(page).form
    assert (form.method, form.action) == ("post", idp.sso_url)
    xml = base64.b64decode(form.fields["SAMLRequest"])
    request = etree.fromstring(xml)
    assert request.tag == f"{SAMLP}AuthnRequest" and request.get("Destination") == idp.sso_url
    assert OneLogin_Saml2_Utils.validate_sign(xml, cert=via.provider.settings["sp_certificate"],
                                              xpath="/samlp:AuthnRequest/ds:Signature", raise_exceptions=True)
    method = request.find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureMethod").get("Algorithm")
    assert method == C.RSA_SHA256
    assert len(form.fields["RelayState"]) >= 32
    html = page.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="' in attributes and not body.strip() for attributes, body in scripts)
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'self' governs scripts
    script = browser.http.get(re.search(r'<script src="([^"]+)"', html).group(1))
    assert script.status_code == 200 and "submit()" in script.get_data(as_text=True)
    assert '<button type="submit">Continue</button>' in html  # without JavaScript, the person sends it on

    response = via.answer({"request_id": request.get("ID"), "RelayState": form.fields["RelayState"]})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert count(db_session, UserSession) == 1


# --- just-in-time membership through an organization's own connection ----------------------------------

@pytest.fixture
def acme(db_session):
    owner = factories.UserFactory(email="owner@acme.example")
    organization = factories.create_organization(db_session, owner=owner, slug="acme")
    factories.create_role(db_session, organization, "engineer", ["members:read", "clients:read", "audit:read"])
    # Its connections may assert only addresses in domains it verified.
    for domain in ("corp.example", "acme.example"):
        factories.verified_domain(db_session, organization, domain)
    return organization


def org_trip(make_connection, browser, settings, idp, organization, **connection: Any) -> SAMLRoundTrip:
    return SAMLRoundTrip(browser, make_connection(organization_id=organization.id, **connection), idp,
                         settings.ISSUER)


def membership_role(db_session, organization, email: str) -> str | None:
    db_session.expire_all()
    user = db_session.scalar(select(User).where(User.email == email))
    membership = db_session.scalar(select(Membership).where(Membership.organization_id == organization.id,
                                                            Membership.user_id == user.id))
    return membership.role.name if membership else None


def test_first_sign_in_adds_the_membership_with_the_default_role(make_connection, browser, settings, idp, acme,
                                                                  db_session):
    via = org_trip(make_connection, browser, settings, idp, acme)
    assert via.answer(via.start()).status_code == 200
    assert membership_role(db_session, acme, "pat@corp.example") == "member"
    event = audit_events(db_session, "membership.added")[-1]
    assert event.details == {"role": "member", "via": "sso", "provider_id": str(via.provider.id)}


def test_the_highest_mapped_group_role_wins(make_connection, browser, settings, idp, acme, db_session):
    via = org_trip(make_connection, browser, settings, idp, acme,
                   group_role_map={"Staff": "member", "Engineering": "engineer", "Unknown": "ghost"})
    response = via.answer(via.start(), attributes={"email": ["pat@corp.example"],
                                                   "groups": ["Staff", "Engineering", "Unknown"]})
    assert response.status_code == 200
    assert membership_role(db_session, acme, "pat@corp.example") == "engineer"


def test_every_sign_in_syncs_the_role_from_the_groups_and_audits_it(make_connection, browser, settings, idp, acme,
                                                                    db_session):
    via = org_trip(make_connection, browser, settings, idp, acme, group_role_map={"Engineering": "engineer"})
    assert via.answer(via.start()).status_code == 200
    assert membership_role(db_session, acme, "pat@corp.example") == "member"
    again = via.answer(via.start(), attributes={"email": ["pat@corp.example"], "groups": ["Engineering"]})
    assert again.status_code == 200
    assert membership_role(db_session, acme, "pat@corp.example") == "engineer"
    event = audit_events(db_session, "membership.role_synced")[-1]
    assert event.details == {"old_role": "member", "new_role": "engineer", "provider_id": str(via.provider.id)}


def test_a_sign_in_never_changes_an_owners_role(make_connection, browser, settings, idp, acme, db_session):
    via = org_trip(make_connection, browser, settings, idp, acme, group_role_map={"Engineering": "engineer"})
    owner = db_session.scalar(select(User).where(User.email == "owner@acme.example"))
    db_session.add(ExternalIdentity(user_id=owner.id, provider_id=via.provider.id, subject="corp-owner"))
    db_session.commit()
    response = via.answer(via.start(), subject="corp-owner",
                          attributes={"email": ["owner@acme.example"], "groups": ["Engineering"]})
    assert response.status_code == 200
    assert membership_role(db_session, acme, "owner@acme.example") == "owner"
    assert audit_events(db_session, "membership.role_synced") == []


def test_without_jit_membership_nobody_is_added(make_connection, browser, settings, idp, acme, db_session):
    via = org_trip(make_connection, browser, settings, idp, acme, jit_membership=False)
    assert via.answer(via.start()).status_code == 200
    assert membership_role(db_session, acme, "pat@corp.example") is None


def test_an_organizations_connection_is_not_offered_on_the_platform_sign_in_page(make_connection, browser, acme):
    connection = make_connection(organization_id=acme.id)
    assert f"/federation/{connection.id}/start" not in browser.login_page().get_data(as_text=True)
