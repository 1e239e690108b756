"""SAML single logout (SAML Profiles §4.4) at /saml/<id>/sls, HTTP-Redirect binding (SAML Bindings §3.4):
an IdP's LogoutRequest ends the Gatehouse sessions it names and gets our signed LogoutResponse; /oauth2/logout
of a person signed in through the connection sends the IdP a signed LogoutRequest and finishes when its
LogoutResponse comes back. Each refusal is one check the SLS must make, as strict as the ACS's."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from sqlalchemy import select

from app.models import IdentityProvider, SessionEndReason, UserSession
from tests.oauth.helpers import (WEB_POST_LOGOUT_URI, Redirect, audit_events, authorization_params,
                                 is_consent_page, make_pkce, parse_page, query_of, store_under_a_dropped_key,
                                 without_query)
from tests.oauth.test_saml_sign_in import SAMLRoundTrip, idp, make_connection  # noqa: F401 -- fixtures
from tests.saml_idp import TestIdP, key_and_certificate

SAMLP = "{urn:oasis:names:tc:SAML:2.0:protocol}"
SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"
COOKIE = "gatehouse_session"


@pytest.fixture
def connection(make_connection) -> IdentityProvider:
    return make_connection(idp_slo_url=TestIdP.slo_url)


@pytest.fixture
def via(browser, connection, idp, settings) -> SAMLRoundTrip:
    return SAMLRoundTrip(browser, connection, idp, settings.ISSUER)


@pytest.fixture
def signed_in(via, db_session) -> UserSession:
    """Pat, signed in through the connection with the IdP session `_idp-session-1`."""
    assert via.answer(via.start(), session_index="_idp-session-1").status_code == 200
    return live_sessions(db_session)[0]


def live_sessions(db_session) -> list[UserSession]:
    db_session.expire_all()
    return list(db_session.scalars(select(UserSession).where(UserSession.ended_at.is_(None))))


def sls_url(via: SAMLRoundTrip) -> str:
    return via.provider.saml_url(via.entity_id.rsplit("/saml/", 1)[0], "sls")


def to_sls(via: SAMLRoundTrip, query: str, method: str = "GET"):
    return via.browser.http.open(f"/saml/{via.provider.id}/sls?{query}", method=method)


def message_of(location: str, saml_type: str, certificate: str) -> tuple[Any, dict[str, str]]:
    """The message a redirect carries (Bindings §3.4.4), its query signature checked with `certificate`."""
    sent = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    signed_query = "&".join(f"{k}={OneLogin_Saml2_Utils.escape_url(sent[k])}"
                            for k in (saml_type, "RelayState", "SigAlg") if k in sent)
    assert sent["SigAlg"] == C.RSA_SHA256
    assert OneLogin_Saml2_Utils.validate_binary_sign(signed_query, base64.b64decode(sent["Signature"]),
                                                     certificate, C.RSA_SHA256)
    return etree.fromstring(OneLogin_Saml2_Utils.decode_base64_and_inflate(sent[saml_type])), sent


def assert_nobody_signed_out(response, db_session, reason: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "Not signed out" in parse_page(response).text
    assert len(live_sessions(db_session)) == 1
    assert audit_events(db_session, "saml.logout") == []
    assert audit_events(db_session, "federation.failed")[-1].details["reason"].startswith(reason)


# --- what a sign-in keeps ------------------------------------------------------------------------------------

def test_a_saml_sign_in_keeps_the_name_id_and_session_index_with_the_session(signed_in):
    assert signed_in.saml_name_id == "corp-user-1"
    assert signed_in.saml_name_id_format == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert signed_in.saml_session_index == "_idp-session-1"


# --- the IdP's LogoutRequest -------------------------------------------------------------------------------

def test_an_idp_logout_request_ends_the_session_and_answers_with_a_signed_logout_response(via, signed_in,
                                                                                          db_session):
    request = via.idp.logout_request(destination=sls_url(via), name_id="corp-user-1",
                                     session_index="_idp-session-1", request_id="_idp-logout-1")
    response = to_sls(via, via.idp.redirect_query("SAMLRequest", request, relay_state="idp-state"))

    assert response.status_code == 302 and response.location.startswith(TestIdP.slo_url + "?")
    answer, sent = message_of(response.location, "SAMLResponse", via.provider.settings["sp_certificate"])
    assert answer.tag == f"{SAMLP}LogoutResponse"
    assert answer.get("InResponseTo") == "_idp-logout-1" and answer.get("Destination") == TestIdP.slo_url
    assert answer.find(f"{SAML}Issuer").text == via.entity_id
    assert answer.find(f"{SAMLP}Status/{SAMLP}StatusCode").get("Value") == C.STATUS_SUCCESS
    assert sent["RelayState"] == "idp-state"
    assert live_sessions(db_session) == []
    db_session.refresh(signed_in)
    assert signed_in.end_reason == SessionEndReason.IDP_LOGOUT
    assert audit_events(db_session, "saml.logout")[-1].details == {"sessions_ended": 1}
    assert any(h.startswith(f"{COOKIE}=;") for h in response.headers.getlist("Set-Cookie"))


def test_an_idp_logout_request_without_a_session_index_ends_every_session_of_the_person(via, signed_in,
                                                                                       db_session):
    assert via.answer(via.start(), session_index="_idp-session-2").status_code == 200
    assert len(live_sessions(db_session)) == 2
    request = via.idp.logout_request(destination=sls_url(via), name_id="corp-user-1")
    assert to_sls(via, via.idp.redirect_query("SAMLRequest", request)).status_code == 302
    assert live_sessions(db_session) == []


def test_an_idp_logout_request_for_another_idp_session_ends_nothing(via, signed_in, db_session):
    request = via.idp.logout_request(destination=sls_url(via), name_id="corp-user-1", session_index="_other")
    assert to_sls(via, via.idp.redirect_query("SAMLRequest", request)).status_code == 302
    assert len(live_sessions(db_session)) == 1
    assert audit_events(db_session, "saml.logout")[-1].details == {"sessions_ended": 0}


def test_an_idp_logout_request_for_another_person_ends_nothing(via, signed_in, db_session):
    request = via.idp.logout_request(destination=sls_url(via), name_id="corp-user-2")
    assert to_sls(via, via.idp.redirect_query("SAMLRequest", request)).status_code == 302
    assert len(live_sessions(db_session)) == 1


def test_the_sls_also_takes_the_redirect_binding_on_post(via, signed_in, db_session):
    request = via.idp.logout_request(destination=sls_url(via), name_id="corp-user-1")
    assert to_sls(via, via.idp.redirect_query("SAMLRequest", request), method="POST").status_code == 302
    assert live_sessions(db_session) == []


STRANGER_KEY, _ = key_and_certificate("idp.corp.test")


@pytest.mark.parametrize(("message", "query", "reason"), [
    ({}, {"signed": False}, "saml_logout_unsigned"),
    ({}, {"algorithm": C.RSA_SHA1}, "saml_logout_signature"),
    ({}, {"key_pem": STRANGER_KEY}, "saml_logout_signature"),
    ({"destination": "https://gatehouse.test/elsewhere"}, {}, "saml_logout_"),
    ({"destination": None}, {}, "saml_logout_destination"),
    ({"issuer": None}, {}, "saml_logout_issuer"),
    ({"issuer": "https://other-idp.test"}, {}, "saml_logout_"),
], ids=["unsigned", "sha1", "unpinned-key", "other-destination", "no-destination", "no-issuer", "other-issuer"])
def test_an_idp_logout_request_that_fails_a_check_ends_nothing(via, signed_in, db_session, message, query, reason):
    request = via.idp.logout_request(**({"destination": sls_url(via), "name_id": "corp-user-1"} | message))
    response = to_sls(via, via.idp.redirect_query("SAMLRequest", request, **query))
    assert_nobody_signed_out(response, db_session, reason)


def test_a_tampered_logout_request_ends_nothing(via, signed_in, db_session):
    signed = via.idp.redirect_query("SAMLRequest", via.idp.logout_request(destination=sls_url(via),
                                                                        name_id="corp-user-2"))
    other = via.idp.redirect_query("SAMLRequest", via.idp.logout_request(destination=sls_url(via),
                                                                       name_id="corp-user-1"), signed=False)
    # corp-user-1's request with the signature of corp-user-2's.
    forged = other + "&" + "&".join(part for part in signed.split("&") if part.startswith(("SigAlg", "Signature")))
    assert_nobody_signed_out(to_sls(via, forged), db_session, "saml_logout_signature")


def test_the_sls_of_an_unknown_connection_is_404(browser):
    assert browser.http.get("/saml/00000000-0000-0000-0000-000000000000/sls").status_code == 404


# --- our logout: LogoutRequest to the IdP, its LogoutResponse back ---------------------------------------

def confirm_logout(via: SAMLRoundTrip, **query: str):
    page = via.browser.http.get("/oauth2/logout", query_string=query)
    form = parse_page(page).form
    return via.browser.http.post(form.action, data={**form.fields, "confirm": "yes"})


def test_our_logout_ends_the_session_and_sends_the_idp_a_signed_logout_request(via, signed_in, db_session):
    response = confirm_logout(via)
    assert response.status_code == 302 and response.location.startswith(TestIdP.slo_url + "?")
    request, sent = message_of(response.location, "SAMLRequest", via.provider.settings["sp_certificate"])
    assert request.tag == f"{SAMLP}LogoutRequest" and request.get("Destination") == TestIdP.slo_url
    assert request.find(f"{SAML}NameID").text == "corp-user-1"
    assert request.find(f"{SAMLP}SessionIndex").text == "_idp-session-1"
    assert "/" not in sent["RelayState"] and len(sent["RelayState"]) >= 32
    assert live_sessions(db_session) == []
    assert any(h.startswith(f"{COOKIE}=;") for h in response.headers.getlist("Set-Cookie"))

    answer = via.idp.logout_response(destination=sls_url(via), in_response_to=request.get("ID"))
    done = to_sls(via, via.idp.redirect_query("SAMLResponse", answer, relay_state=sent["RelayState"]))
    assert done.status_code == 200 and "You are signed out" in parse_page(done).text


def test_the_idp_logout_response_returns_to_the_relying_partys_post_logout_uri(via, web_client, exchange,
                                                                               db_session):
    """RP-Initiated Logout 1.0 §3 after Profiles §4.4: the RP's post_logout_redirect_uri (and state) is where the
    IdP's LogoutResponse ends up, kept server-side under the RelayState."""
    pkce = make_pkce()
    params = authorization_params(web_client, pkce=pkce, idp_hint=str(via.provider.id))
    start = via.browser.http.get(via.browser.authorize(params).location)
    sent = {k: v[0] for k, v in parse_qs(urlsplit(start.location).query).items()}
    request_id = etree.fromstring(OneLogin_Saml2_Utils.decode_base64_and_inflate(sent["SAMLRequest"])).get("ID")
    back = via.answer(sent | {"request_id": request_id})
    consent = via.browser.http.get(back.location)
    answer = via.browser.decide(consent, "allow") if is_consent_page(consent) else consent
    redirect = Redirect(response=answer, location=answer.location, params=query_of(answer.location),
                        client=web_client, redirect_uri=params["redirect_uri"], pkce=pkce, nonce=params["nonce"])
    id_token = exchange(redirect).get_json()["id_token"]

    response = via.browser.http.get("/oauth2/logout", query_string={
        "id_token_hint": id_token, "post_logout_redirect_uri": WEB_POST_LOGOUT_URI, "state": "bye-1"})
    assert response.status_code == 302 and response.location.startswith(TestIdP.slo_url + "?")
    request, sent = message_of(response.location, "SAMLRequest", via.provider.settings["sp_certificate"])
    answer = via.idp.logout_response(destination=sls_url(via), in_response_to=request.get("ID"))
    done = to_sls(via, via.idp.redirect_query("SAMLResponse", answer, relay_state=sent["RelayState"]))
    assert done.status_code == 302
    assert without_query(done.location) == WEB_POST_LOGOUT_URI and query_of(done.location) == {"state": "bye-1"}


def test_our_logout_when_no_key_decrypts_the_connections_key_ends_our_session_here(via, signed_in, db_session):
    """Without its SP key the IdP cannot be sent a signed LogoutRequest: our logout, already done, finishes
    here (not a 500 with the cookie left), and the audit trail says why the IdP was not told."""
    store_under_a_dropped_key(db_session, via.provider, "sp_private_key_ciphertext")

    response = confirm_logout(via)

    assert response.status_code == 200 and "You are signed out" in parse_page(response).text
    assert live_sessions(db_session) == []
    assert any(h.startswith(f"{COOKIE}=;") for h in response.headers.getlist("Set-Cookie"))
    assert audit_events(db_session, "federation.failed")[-1].details == {"reason": "secret_undecryptable"}


def test_an_idp_logout_request_when_no_key_decrypts_the_connections_key_ends_nothing(via, signed_in, db_session):
    """The LogoutResponse could not be signed: nothing ends (Profiles §4.4.4.2 has the IdP learn the outcome),
    a plain page, the reason audited."""
    store_under_a_dropped_key(db_session, via.provider, "sp_private_key_ciphertext")
    request = via.idp.logout_request(destination=sls_url(via), name_id="corp-user-1",
                                     session_index="_idp-session-1", request_id="_idp-logout-1")

    response = to_sls(via, via.idp.redirect_query("SAMLRequest", request, relay_state="idp-state"))

    assert_nobody_signed_out(response, db_session, "secret_undecryptable")


def test_our_logout_without_an_idp_slo_url_stays_here(make_connection, browser, idp, settings, db_session):
    via = SAMLRoundTrip(browser, make_connection(), idp, settings.ISSUER)
    assert via.answer(via.start()).status_code == 200
    response = confirm_logout(via)
    assert response.status_code == 200 and "You are signed out" in parse_page(response).text
    assert live_sessions(db_session) == []


@pytest.fixture
def logout_sent(via, signed_in) -> tuple[Any, dict[str, str]]:
    """Our LogoutRequest as the IdP received it, and its query."""
    return message_of(confirm_logout(via).location, "SAMLRequest", via.provider.settings["sp_certificate"])


@pytest.mark.parametrize(("message", "query", "reason"), [
    ({}, {"signed": False}, "saml_logout_unsigned"),
    ({}, {"algorithm": C.RSA_SHA1}, "saml_logout_signature"),
    ({}, {"key_pem": STRANGER_KEY}, "saml_logout_signature"),
    ({"in_response_to": None}, {}, "saml_logout_in_response_to"),
    ({"in_response_to": "_another"}, {}, "saml_logout_"),
    ({"destination": "https://gatehouse.test/elsewhere"}, {}, "saml_logout_"),
    # python3-saml checks only that a Destination starts with ours, and none that is missing: ours is exact.
    ({"destination": "SLS/extra"}, {}, "saml_logout_destination"),
    ({"destination": None}, {}, "saml_logout_destination"),
    ({"issuer": "https://other-idp.test"}, {}, "saml_logout_"),
    ({"issuer": None}, {}, "saml_logout_issuer"),
    ({"status": C.STATUS_RESPONDER}, {}, "saml_logout_status"),
], ids=["unsigned", "sha1", "unpinned-key", "no-in-response-to", "other-in-response-to", "other-destination",
        "longer-destination", "no-destination", "other-issuer", "no-issuer", "not-success"])
def test_an_idp_logout_response_that_fails_a_check_is_refused(via, logout_sent, db_session, message, query, reason):
    request, sent = logout_sent
    if (message.get("destination") or "").startswith("SLS"):  # our SLS URL, which only the test knows
        message = {**message, "destination": message["destination"].replace("SLS", sls_url(via))}
    answer = via.idp.logout_response(**({"destination": sls_url(via), "in_response_to": request.get("ID")} | message))
    response = to_sls(via, via.idp.redirect_query("SAMLResponse", answer, relay_state=sent["RelayState"], **query))
    assert response.status_code == 400
    assert "You are signed out" in parse_page(response).text  # ours had ended before the IdP was asked
    assert audit_events(db_session, "federation.failed")[-1].details["reason"].startswith(reason)


def test_an_idp_logout_response_is_accepted_once(via, logout_sent, db_session):
    request, sent = logout_sent
    query = via.idp.redirect_query("SAMLResponse", via.idp.logout_response(
        destination=sls_url(via), in_response_to=request.get("ID")), relay_state=sent["RelayState"])
    assert to_sls(via, query).status_code == 200
    again = to_sls(via, query)
    assert again.status_code == 400
    assert audit_events(db_session, "federation.failed")[-1].details["reason"] == "state_expired"


def test_an_idp_logout_response_when_no_key_decrypts_the_connections_key_says_we_signed_out(via, logout_sent,
                                                                                           db_session):
    """The key went between our LogoutRequest and the IdP's answer: our session had already ended, and the
    page says so (not "Not signed out"), with the reason audited."""
    request, sent = logout_sent
    store_under_a_dropped_key(db_session, via.provider, "sp_private_key_ciphertext")
    query = via.idp.redirect_query("SAMLResponse", via.idp.logout_response(
        destination=sls_url(via), in_response_to=request.get("ID")), relay_state=sent["RelayState"])

    response = to_sls(via, query)

    assert response.status_code == 400
    page = parse_page(response).text
    assert "You are signed out" in page and "Not signed out" not in page
    assert live_sessions(db_session) == []
    assert audit_events(db_session, "federation.failed")[-1].details == {"reason": "secret_undecryptable"}


# --- the HTTP-POST binding at the SLS (Bindings §3.5): the signature inside the message -----------------

def post_to_sls(via: SAMLRoundTrip, form: dict[str, str]):
    return via.browser.http.post(f"/saml/{via.provider.id}/sls", data=form)


def test_an_idp_logout_request_by_post_ends_the_session(via, signed_in, db_session):
    request = via.idp.logout_request(destination=sls_url(via), name_id="corp-user-1", request_id="_posted")
    response = post_to_sls(via, via.idp.post_form("SAMLRequest", request, relay_state="idp-state"))
    assert response.status_code == 302 and response.location.startswith(TestIdP.slo_url + "?")
    answer, _ = message_of(response.location, "SAMLResponse", via.provider.settings["sp_certificate"])
    assert answer.get("InResponseTo") == "_posted"
    assert live_sessions(db_session) == []


def test_an_idp_logout_response_by_post_finishes_our_logout(via, logout_sent):
    request, sent = logout_sent
    answer = via.idp.logout_response(destination=sls_url(via), in_response_to=request.get("ID"))
    done = post_to_sls(via, via.idp.post_form("SAMLResponse", answer, relay_state=sent["RelayState"]))
    assert done.status_code == 200 and "You are signed out" in parse_page(done).text


def _tampered(via: SAMLRoundTrip) -> dict[str, str]:
    xml = via.idp.sign(via.idp.logout_request(destination=sls_url(via), name_id="corp-user-2"))
    return {"SAMLRequest": base64.b64encode(xml.replace(b"corp-user-2", b"corp-user-1")).decode()}


def _signature_of_another_element(via: SAMLRoundTrip) -> dict[str, str]:
    """The signed request's root renamed: its signature's Reference no longer names the message."""
    xml = via.idp.sign(via.idp.logout_request(destination=sls_url(via), name_id="corp-user-1", request_id="_a"))
    return {"SAMLRequest": base64.b64encode(xml.replace(b'ID="_a"', b'ID="_b"', 1)).decode()}


@pytest.mark.parametrize(("form", "reason"), [
    (lambda via: via.idp.post_form("SAMLRequest", via.idp.logout_request(
        destination=sls_url(via), name_id="corp-user-1"), signed=False), "saml_logout_unsigned"),
    (lambda via: via.idp.post_form("SAMLRequest", via.idp.logout_request(
        destination=sls_url(via), name_id="corp-user-1"), algorithm=C.RSA_SHA1, digest=C.SHA1),
     "saml_logout_signature"),
    (lambda via: via.idp.post_form("SAMLRequest", via.idp.logout_request(
        destination=sls_url(via), name_id="corp-user-1"), key_pem=STRANGER_KEY), "saml_logout_signature"),
    (_tampered, "saml_logout_signature"),
    (_signature_of_another_element, "saml_logout_signature"),
    (lambda via: via.idp.post_form("SAMLRequest", via.idp.logout_request(
        destination=sls_url(via) + "/extra", name_id="corp-user-1")), "saml_logout_"),
    (lambda via: {"SAMLRequest": "not base64 !"}, "saml_logout_malformed"),
    (lambda via: {}, "saml_logout_malformed"),
], ids=["unsigned", "sha1", "unpinned-key", "tampered", "reference-not-the-message", "other-destination",
        "malformed", "empty"])
def test_an_idp_logout_request_by_post_that_fails_a_check_ends_nothing(via, signed_in, db_session, form, reason):
    assert_nobody_signed_out(post_to_sls(via, form(via)), db_session, reason)
