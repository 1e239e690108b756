"""A SAML 2.0 identity provider for the tests: its own RSA key and certificate, its metadata, Responses built
as real XML and signed with xmlsec (python3-saml's signing utility), posted to the real ACS, and single-logout
messages (LogoutRequest, LogoutResponse) signed over the query as the HTTP-Redirect binding does (SAML
Bindings §3.4.4.1)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils
import xmlsec

BINDINGS = {"HTTP-Redirect": C.BINDING_HTTP_REDIRECT, "HTTP-POST": C.BINDING_HTTP_POST}
TRANSFORMS = {C.RSA_SHA256: xmlsec.Transform.RSA_SHA256, C.RSA_SHA1: xmlsec.Transform.RSA_SHA1}
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_and_certificate(common_name: str) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            certificate.public_bytes(serialization.Encoding.PEM).decode())


class TestIdP:
    __test__ = False

    entity_id = "https://idp.corp.test/saml"
    sso_url = "https://idp.corp.test/saml/sso"
    slo_url = "https://idp.corp.test/saml/slo"

    def __init__(self) -> None:
        self.key_pem, self.certificate_pem = key_and_certificate("idp.corp.test")

    def sign(self, xml: bytes | str, *, algorithm: str = C.RSA_SHA256, digest: str = C.SHA256,
             key_pem: str | None = None, certificate_pem: str | None = None) -> bytes:
        signed = OneLogin_Saml2_Utils.add_sign(xml, key_pem or self.key_pem, certificate_pem or self.certificate_pem,
                                               sign_algorithm=algorithm, digest_algorithm=digest)
        return signed if isinstance(signed, bytes) else signed.encode()

    def assertion(self, *, audience: str, recipient: str, in_response_to: str | None, subject: str = "corp-user-1",
                  name_id_format: str = PERSISTENT, attributes: dict[str, list[str]] | None = None,
                  not_before: datetime | None = None, not_on_or_after: datetime | None = None,
                  assertion_id: str | None = None, issuer: str | None = None,
                  session_index: str | None = None) -> str:
        now = datetime.now(UTC)
        not_before = not_before or now - timedelta(seconds=30)
        not_on_or_after = not_on_or_after or now + timedelta(minutes=5)
        in_response = f" InResponseTo={quoteattr(in_response_to)}" if in_response_to else ""
        values = "".join(
            f'<saml:Attribute Name={quoteattr(name)}>'
            + "".join(f"<saml:AttributeValue>{escape(v)}</saml:AttributeValue>" for v in vs)
            + "</saml:Attribute>" for name, vs in (attributes or {}).items())
        return (
            f'<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
            f'ID="{assertion_id or "_a" + uuid.uuid4().hex}" Version="2.0" IssueInstant="{_instant(now)}">'
            f"<saml:Issuer>{escape(issuer or self.entity_id)}</saml:Issuer>"
            f"<saml:Subject><saml:NameID Format={quoteattr(name_id_format)}>{escape(subject)}</saml:NameID>"
            f'<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
            f'<saml:SubjectConfirmationData NotOnOrAfter="{_instant(not_on_or_after)}" '
            f"Recipient={quoteattr(recipient)}{in_response}/></saml:SubjectConfirmation></saml:Subject>"
            f'<saml:Conditions NotBefore="{_instant(not_before)}" NotOnOrAfter="{_instant(not_on_or_after)}">'
            f"<saml:AudienceRestriction><saml:Audience>{escape(audience)}</saml:Audience>"
            f"</saml:AudienceRestriction></saml:Conditions>"
            f'<saml:AuthnStatement AuthnInstant="{_instant(now)}" SessionIndex={quoteattr(session_index or "_s" + uuid.uuid4().hex)}>'
            f"<saml:AuthnContext><saml:AuthnContextClassRef>"
            f"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            f"</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
            f"{'<saml:AttributeStatement>' + values + '</saml:AttributeStatement>' if values else ''}"
            f"</saml:Assertion>")

    def response(self, *assertions: bytes | str, destination: str, in_response_to: str | None) -> str:
        """A Response carrying `assertions` (signed or not, as given), base64 as the HTTP-POST binding sends it."""
        in_response = f" InResponseTo={quoteattr(in_response_to)}" if in_response_to else ""
        body = "".join(a.decode() if isinstance(a, bytes) else a for a in assertions)
        xml = (f'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
               f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r{uuid.uuid4().hex}" Version="2.0" '
               f'IssueInstant="{_instant(datetime.now(UTC))}" Destination={quoteattr(destination)}{in_response}>'
               f"<saml:Issuer>{escape(self.entity_id)}</saml:Issuer>"
               f'<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
               f"{body}</samlp:Response>")
        return base64.b64encode(xml.encode()).decode()

    # --- metadata (SAML Metadata §2.4.3) ---------------------------------------------------------------------

    def metadata(self, *, sso_bindings: tuple[str, ...] = ("HTTP-Redirect",), slo: bool = True,
                 certificates: list[str] | None = None, entity_id: str | None = None) -> str:
        """An EntityDescriptor with an IDPSSODescriptor: a signing KeyDescriptor per certificate (default: ours),
        an SSO service per binding, an SLO service (HTTP-Redirect)."""
        keys = "".join(
            '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
            + "".join(pem.strip().splitlines()[1:-1]) + "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
            "</md:KeyDescriptor>" for pem in ([self.certificate_pem] if certificates is None else certificates))
        logout = (f'<md:SingleLogoutService Binding="{C.BINDING_HTTP_REDIRECT}" Location={quoteattr(self.slo_url)}/>'
                  if slo else "")
        sso = "".join(f'<md:SingleSignOnService Binding="{BINDINGS[binding]}" Location={quoteattr(self.sso_url)}/>'
                      for binding in sso_bindings)
        return (f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
                f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID={quoteattr(entity_id or self.entity_id)}>'
                f'<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
                f"{keys}{logout}"
                f"<md:NameIDFormat>{PERSISTENT}</md:NameIDFormat>{sso}"
                f"</md:IDPSSODescriptor></md:EntityDescriptor>")

    # --- single logout, HTTP-Redirect binding ------------------------------------------------------------------

    def logout_request(self, *, destination: str | None, name_id: str, session_index: str | None = None,
                       issuer: str | None = "default", request_id: str | None = None) -> str:
        """A LogoutRequest (SAML Core §3.7.1) for the person `name_id`."""
        now = datetime.now(UTC)
        to = f" Destination={quoteattr(destination)}" if destination else ""
        issued_by = f"<saml:Issuer>{escape(self.entity_id if issuer == 'default' else issuer)}</saml:Issuer>" \
            if issuer else ""
        index = f"<samlp:SessionIndex>{escape(session_index)}</samlp:SessionIndex>" if session_index else ""
        return (f'<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
                f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{request_id or "_l" + uuid.uuid4().hex}" '
                f'Version="2.0" IssueInstant="{_instant(now)}" '
                f'NotOnOrAfter="{_instant(now + timedelta(minutes=5))}"{to}>{issued_by}'
                f"<saml:NameID Format={quoteattr(PERSISTENT)}>{escape(name_id)}</saml:NameID>{index}"
                f"</samlp:LogoutRequest>")

    def logout_response(self, *, destination: str | None, in_response_to: str | None,
                        status: str = C.STATUS_SUCCESS, issuer: str | None = "default") -> str:
        """A LogoutResponse (SAML Core §3.7.2) to the SP's LogoutRequest `in_response_to`; None leaves out
        the Destination or the Issuer."""
        answers = f" InResponseTo={quoteattr(in_response_to)}" if in_response_to else ""
        to = f" Destination={quoteattr(destination)}" if destination else ""
        issued_by = f"<saml:Issuer>{escape(self.entity_id if issuer == 'default' else issuer)}</saml:Issuer>" \
            if issuer else ""
        return (f'<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
                f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr{uuid.uuid4().hex}" Version="2.0" '
                f'IssueInstant="{_instant(datetime.now(UTC))}"{to}{answers}>{issued_by}'
                f'<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status></samlp:LogoutResponse>')

    def redirect_query(self, saml_type: str, xml: str, *, relay_state: str | None = None, signed: bool = True,
                       algorithm: str = C.RSA_SHA256, key_pem: str | None = None) -> str:
        """The query of the HTTP-Redirect binding (Bindings §3.4.4): the message deflated and base64, the
        RelayState, and the signature over `SAMLRequest|SAMLResponse=...&RelayState=...&SigAlg=...`."""
        parts = [f"{saml_type}={OneLogin_Saml2_Utils.escape_url(OneLogin_Saml2_Utils.deflate_and_base64_encode(xml))}"]
        if relay_state is not None:
            parts.append(f"RelayState={OneLogin_Saml2_Utils.escape_url(relay_state)}")
        if not signed:
            return "&".join(parts)
        parts.append(f"SigAlg={OneLogin_Saml2_Utils.escape_url(algorithm)}")
        signature = OneLogin_Saml2_Utils.sign_binary("&".join(parts), key_pem or self.key_pem, TRANSFORMS[algorithm])
        return "&".join(parts) + f"&Signature={OneLogin_Saml2_Utils.escape_url(base64.b64encode(signature).decode())}"

    def post_form(self, saml_type: str, xml: str, *, relay_state: str | None = None, signed: bool = True,
                  algorithm: str = C.RSA_SHA256, digest: str = C.SHA256, key_pem: str | None = None) -> dict[str, str]:
        """The form of the HTTP-POST binding (Bindings §3.5.4): the message base64, signed inside the XML."""
        body = self.sign(xml, algorithm=algorithm, digest=digest, key_pem=key_pem) if signed else xml.encode()
        return {saml_type: base64.b64encode(body).decode()} | ({"RelayState": relay_state} if relay_state else {})
