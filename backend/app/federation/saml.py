"""The service-provider side of SAML 2.0 Web Browser SSO (SAML Profiles §4.1) and Single Logout (Profiles §4.4)
for a `saml` connection, on python3-saml: the signed AuthnRequest we send the browser with (HTTP-Redirect or
HTTP-POST binding, RSA-SHA256), our metadata, the validation of the Response posted back to the ACS, and the
LogoutRequest / LogoutResponse messages exchanged at the SLS (ours by HTTP-Redirect, SAML Bindings §3.4;
the IdP's by HTTP-Redirect or HTTP-POST, §3.5).

python3-saml validates with every option on (strict, wantAssertionsSigned, rejectDeprecatedAlgorithm,
the pinned IdP certificates only, audience, one assertion). What it leaves loose is checked here after it:
Destination and Recipient exactly equal to our ACS URL (it accepts a prefix or a substring), and
InResponseTo present and equal to the request we sent (it skips the comparison when either is missing).
Logout messages are held to the same: signed (over the query, Bindings §3.4.4.1, or enveloped over the
whole message, §3.5.4) by a pinned certificate with no SHA-1, Issuer the IdP, Destination exactly our SLS,
a LogoutResponse's InResponseTo exactly our LogoutRequest's ID.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.logout_response import OneLogin_Saml2_Logout_Response
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from app.errors import FederationFailed
from app.models import IdentityProvider
from app.models.federation import SAMLSettings
from app.security.crypto import FieldCipher
from app.services.identities import VerifiedIdentity
from app.services.identity_providers import decrypt_sp_private_key

# python3-saml's one clock-skew allowance (NotBefore, NotOnOrAfter) is a class constant of 300 s; ours is 2 min.
OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT = 120
MAX_CLOCK_SKEW = timedelta(seconds=OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT)
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
# The bindings an AuthnRequest may go by (SAML Bindings §3.4, §3.5), as the API names them.
BINDINGS = {"HTTP-Redirect": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
            "HTTP-POST": OneLogin_Saml2_Constants.BINDING_HTTP_POST}
# attribute_mapping's key naming a stable attribute to take as the subject instead of the NameID.
SUBJECT_KEY = "subject"
# The attribute names Okta, Entra ID and Google Workspace send (the first present wins, per key).
DEFAULT_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "email": ("email", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "mail"),
    "name": ("name", "displayName", "http://schemas.microsoft.com/identity/claims/displayname"),
    "given_name": ("firstName", "given_name", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"),
    "family_name": ("lastName", "family_name", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"),
    "groups": ("groups", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"),
}


@dataclass(frozen=True)
class SAMLAssertion:
    """What a valid Response vouches for, what the replay cache keeps, and what single logout names."""

    identity: VerifiedIdentity
    assertion_id: str
    expires_at: datetime
    groups: list[str]
    name_id: str
    name_id_format: str | None
    session_index: str | None


@dataclass(frozen=True)
class OutgoingMessage:
    """A message for the IdP, as the browser takes it there: a redirect to `url` (HTTP-Redirect, the message
    in the query), or a form POSTed to `url` with `form` (HTTP-POST)."""

    url: str
    message_id: str
    form: dict[str, str] | None = None


@dataclass(frozen=True)
class IdPLogoutRequest:
    """A valid LogoutRequest of the IdP: whom to sign out, of which of their IdP sessions (none: all)."""

    request_id: str
    name_id: str
    session_indexes: list[str] = field(default_factory=list)


def idp_settings_from_metadata(xml: str | bytes) -> dict[str, Any]:
    """A connection's IdP fields (idp_entity_id, idp_sso_url, idp_sso_binding, idp_slo_url, idp_certificates)
    read from the IdP's metadata (SAML Metadata §2.4.3, IDPSSODescriptor) with python3-saml's parser: the first
    SingleSignOnService of the HTTP-Redirect binding, else of HTTP-POST; the first SingleLogoutService of the
    HTTP-Redirect binding (the one our SLS speaks); every signing certificate (several during a rollover).
    DTDs and entities are refused by the parser.

    Raises:
        ValueError: not metadata XML, no IdP in it, no SSO service of either binding, or no signing certificate
            (an IdP whose responses could not be verified); the message says which.
    """
    found: dict[str, Any] = {}
    for binding, urn in BINDINGS.items():
        try:
            parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml, required_sso_binding=urn)
        except Exception:  # whatever lxml or the parser raises for text that is not metadata
            raise ValueError("Not SAML metadata XML.") from None
        idp = parsed.get("idp")
        if not idp or not idp.get("entityId"):
            raise ValueError("The metadata has no identity provider (EntityDescriptor with an IDPSSODescriptor).")
        if "singleSignOnService" in idp:
            found = idp | {"binding": binding}
            break
    if not found:
        raise ValueError("The identity provider's metadata has no SingleSignOnService with the HTTP-Redirect or "
                         "HTTP-POST binding.")
    signing = found.get("x509certMulti", {}).get("signing") or ([found["x509cert"]] if "x509cert" in found else [])
    if not signing:
        raise ValueError("The identity provider's metadata has no signing certificate (KeyDescriptor with an "
                         "X509Certificate): its responses could not be verified.")
    return {"idp_entity_id": found["entityId"], "idp_sso_url": found["singleSignOnService"]["url"],
            "idp_sso_binding": found["binding"],
            "idp_slo_url": found.get("singleLogoutService", {}).get("url"),
            "idp_certificates": [OneLogin_Saml2_Utils.format_cert(certificate) for certificate in signing]}


class SAMLConnection:
    """One connection's service provider."""

    def __init__(self, provider: IdentityProvider, *, our_issuer: str, sp_private_key: str) -> None:
        settings = provider.kind_settings
        assert isinstance(settings, SAMLSettings)
        self.settings = settings
        self.entity_id = provider.saml_url(our_issuer, "metadata")
        self.acs_url = provider.saml_url(our_issuer, "acs")
        self.sls_url = provider.saml_url(our_issuer, "sls")
        self._sp_private_key = sp_private_key

    @classmethod
    def for_provider(cls, provider: IdentityProvider, *, our_issuer: str, cipher: FieldCipher) -> SAMLConnection:
        """The connection's service provider, its private key decrypted to sign with.

        Raises:
            FederationFailed: no key in ENCRYPTION_KEYS decrypts it.
        """
        return cls(provider, our_issuer=our_issuer, sp_private_key=decrypt_sp_private_key(cipher, provider))

    def _onelogin_settings(self, *, want_messages_signed: bool = False) -> OneLogin_Saml2_Settings:
        """python3-saml's settings. `want_messages_signed`: logout messages, which carry no signed assertion,
        must be signed themselves."""
        idp: dict[str, Any] = {
            "entityId": self.settings.idp_entity_id,
            "singleSignOnService": {"url": self.settings.idp_sso_url,
                                    "binding": BINDINGS[self.settings.idp_sso_binding]},
            # Signatures are checked against these certificates only, never one the response carries.
            "x509certMulti": {"signing": list(self.settings.idp_certificates)},
        }
        if self.settings.idp_slo_url:
            idp["singleLogoutService"] = {"url": self.settings.idp_slo_url,
                                          "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT}
        return OneLogin_Saml2_Settings({
            "strict": True,
            "debug": False,
            "sp": {"entityId": self.entity_id,
                   "assertionConsumerService": {"url": self.acs_url,
                                                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_POST},
                   "singleLogoutService": {"url": self.sls_url,
                                           "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT},
                   "NameIDFormat": self.settings.name_id_format or UNSPECIFIED,
                   "x509cert": self.settings.sp_certificate,
                   "privateKey": self._sp_private_key},
            "idp": idp,
            "security": {"authnRequestsSigned": True, "logoutRequestSigned": True, "logoutResponseSigned": True,
                         "wantAssertionsSigned": True, "wantMessagesSigned": want_messages_signed, "wantNameId": True,
                         "rejectDeprecatedAlgorithm": True, "rejectUnsolicitedResponsesWithInResponseTo": True,
                         "signatureAlgorithm": OneLogin_Saml2_Constants.RSA_SHA256,
                         "digestAlgorithm": OneLogin_Saml2_Constants.SHA256,
                         "requestedAuthnContext": False, "wantAttributeStatement": False, "metadataValidUntil": None,
                         "metadataCacheDuration": None},
        }, sp_validation_only=False)

    def _request_data(self, url: str, post: dict[str, str] | None = None, query: dict[str, str] | None = None,
                      query_string: str | None = None) -> dict[str, Any]:
        """What python3-saml knows of the request: the URL it came to is our own configured one. With
        `query_string`, a query signature is checked over the parameters exactly as they came (Bindings
        §3.4.4.1: the signer's own URL-encoding)."""
        parts = urlsplit(url)
        return {"https": "on" if parts.scheme == "https" else "off", "http_host": parts.netloc,
                "script_name": parts.path, "get_data": query or {}, "post_data": post or {},
                "query_string": query_string or "", "validate_signature_from_qs": query_string is not None}

    def metadata_xml(self) -> str:
        """Our SP metadata: entity id, ACS, SLS and the signing certificate (SAML Metadata §2.4.4)."""
        metadata = self._onelogin_settings().get_sp_metadata()
        return metadata.decode() if isinstance(metadata, bytes) else metadata

    def authn_request(self, *, relay_state: str) -> OutgoingMessage:
        """A signed AuthnRequest for the IdP's SSO binding. HTTP-Redirect: deflated in the query, signed over
        the query (Bindings §3.4.4.1). HTTP-POST: base64 in a form, with an enveloped XML signature (§3.5.4)."""
        settings = self._onelogin_settings()
        name_id_policy = self.settings.name_id_format is not None
        if self.settings.idp_sso_binding == "HTTP-POST":
            request = OneLogin_Saml2_Authn_Request(settings, set_nameid_policy=name_id_policy)
            signed = OneLogin_Saml2_Utils.add_sign(request.get_xml(), self._sp_private_key, self.settings.sp_certificate,
                                                   sign_algorithm=OneLogin_Saml2_Constants.RSA_SHA256,
                                                   digest_algorithm=OneLogin_Saml2_Constants.SHA256)
            xml = signed if isinstance(signed, bytes) else signed.encode()
            return OutgoingMessage(url=self.settings.idp_sso_url, message_id=request.get_id(),
                                   form={"SAMLRequest": base64.b64encode(xml).decode(), "RelayState": relay_state})
        auth = OneLogin_Saml2_Auth(self._request_data(self.acs_url), settings)
        url = auth.login(return_to=relay_state, set_nameid_policy=name_id_policy)
        return OutgoingMessage(url=url, message_id=auth.get_last_request_id())

    def finish(self, saml_response: str, *, request_id: str | None, now: datetime) -> SAMLAssertion:
        """The identity a Response posted to our ACS vouches for. `request_id` None: an unsolicited
        (IdP-initiated) response, which must then not claim to answer a request.

        Raises:
            FederationFailed: any check failed; nothing about the person is known.
        """
        try:
            response = OneLogin_Saml2_Response(self._onelogin_settings(), saml_response)
            response.is_valid(self._request_data(self.acs_url, {"SAMLResponse": saml_response}),
                              request_id=request_id, raise_exceptions=True)
        except (OneLogin_Saml2_ValidationError, OneLogin_Saml2_Error) as error:
            raise FederationFailed(f"saml_invalid:{error.code}", "The identity provider's response is not valid.") \
                from None
        except Exception:  # malformed base64 or XML: python3-saml raises whatever its parser does
            raise FederationFailed("saml_malformed", "The identity provider's response is not valid.") from None
        self._check_exact(response, request_id)
        return self._assertion(response, now)

    def _check_exact(self, response: OneLogin_Saml2_Response, request_id: str | None) -> None:
        root = response.document
        if root.get("Destination") != self.acs_url:
            raise FederationFailed("saml_destination", "The identity provider's response is not for this service.")
        confirmations = root.findall(".//{urn:oasis:names:tc:SAML:2.0:assertion}SubjectConfirmationData")
        if not confirmations or any(c.get("Recipient") != self.acs_url for c in confirmations):
            raise FederationFailed("saml_recipient", "The identity provider's response is not for this service.")
        answered = {root.get("InResponseTo"), *(c.get("InResponseTo") for c in confirmations)}
        if answered != {request_id}:
            raise FederationFailed("saml_in_response_to", "This sign-in was not started here, or it was already "
                                                          "completed. Please try again.")

    def _attribute(self, attributes: dict[str, list[str]], key: str) -> list[str]:
        mapped = (self.settings.attribute_mapping or {}).get(key)
        for name in (mapped,) if mapped else DEFAULT_ATTRIBUTES.get(key, ()):
            if attributes.get(name):
                return [value for value in attributes[name] if isinstance(value, str)]
        return []

    def _subject(self, name_id: str | None, name_id_format: str | None, attributes: dict[str, list[str]]) -> str:
        """The NameID, or the attribute attribute_mapping["subject"] names when set (SAML Core §8.3.8: a
        transient NameID changes every sign-in, so nobody could be found by it again)."""
        if (self.settings.attribute_mapping or {}).get(SUBJECT_KEY):
            subject = next(iter(self._attribute(attributes, SUBJECT_KEY)), None)
        else:
            subject = name_id if name_id_format != TRANSIENT else None
        if not subject:
            raise FederationFailed("saml_subject", "The identity provider did not say who you are in a lasting way.")
        return subject

    def _assertion(self, response: OneLogin_Saml2_Response, now: datetime) -> SAMLAssertion:
        name_id, name_id_format = response.get_nameid(), response.get_nameid_format()
        attributes = response.get_attributes()
        subject = self._subject(name_id, name_id_format, attributes)
        email = next(iter(self._attribute(attributes, "email")), None)
        if email is None and name_id_format == OneLogin_Saml2_Constants.NAMEID_EMAIL_ADDRESS:
            email = name_id
        name = next(iter(self._attribute(attributes, "name")), "") or " ".join(
            part for key in ("given_name", "family_name") for part in self._attribute(attributes, key)[:1])
        not_on_or_after = response.get_assertion_not_on_or_after()
        expires_at = (datetime.fromtimestamp(not_on_or_after, UTC) if not_on_or_after else now) + MAX_CLOCK_SKEW
        # The assertion was signed by the pinned IdP: the email it asserts is as proved as the IdP makes it.
        identity = VerifiedIdentity(subject=subject, email=email, email_verified=email is not None, name=name)
        return SAMLAssertion(identity=identity, assertion_id=response.get_assertion_id(), expires_at=expires_at,
                             groups=self._attribute(attributes, "groups"), name_id=name_id,
                             name_id_format=name_id_format, session_index=response.get_session_index())

    # --- single logout (SAML Profiles §4.4): ours by HTTP-Redirect, the IdP's by HTTP-Redirect or HTTP-POST ---

    def logout_request(self, *, name_id: str, name_id_format: str | None, session_index: str | None,
                       relay_state: str) -> OutgoingMessage:
        """A signed LogoutRequest (Profiles §4.4.3.1) ending the person's session at the IdP, by redirect to its
        SLO URL (the connection must have one)."""
        auth = OneLogin_Saml2_Auth(self._request_data(self.sls_url), self._onelogin_settings())
        url = auth.logout(return_to=relay_state, name_id=name_id, session_index=session_index,
                          name_id_format=name_id_format)
        return OutgoingMessage(url=url, message_id=auth.get_last_request_id())

    def _check_message_signature(self, auth: OneLogin_Saml2_Auth, query: dict[str, str], saml_type: str) -> None:
        """The query signature (Bindings §3.4.4.1) by a pinned certificate, never SHA-1; unsigned is refused."""
        if "Signature" not in query or "SigAlg" not in query:
            raise FederationFailed("saml_logout_unsigned", "The identity provider's logout message is not signed.")
        check = auth.validate_request_signature if saml_type == "SAMLRequest" else auth.validate_response_signature
        if not check(query):
            raise FederationFailed("saml_logout_signature", "The identity provider's logout message is not valid.")

    def _check_destination(self, document: Any) -> None:
        # Bindings §3.4.5.2: a signed message's Destination MUST be the URL it is delivered to.
        if document.get("Destination") != self.sls_url:
            raise FederationFailed("saml_logout_destination", "The identity provider's logout message is not for "
                                                              "this service.")

    def _check_enveloped_signature(self, encoded: str) -> None:
        """HTTP-POST binding (Bindings §3.5.4): one signature, a child of the message's root, whose one Reference
        is the root itself (SAML Core §5.4.2; nothing else may be what was signed), no SHA-1, by a pinned
        certificate."""
        try:
            document = OneLogin_Saml2_XML.to_etree(OneLogin_Saml2_Utils.decode_base64_and_inflate(encoded,
                                                                                                  ignore_zip=True))
        except Exception:  # malformed base64 or XML
            raise FederationFailed("saml_logout_malformed", "The identity provider's logout message is not "
                                                            "valid.") from None
        signatures = OneLogin_Saml2_XML.query(document, "/*/ds:Signature")
        if len(signatures) != 1:
            raise FederationFailed("saml_logout_unsigned", "The identity provider's logout message is not signed.")
        references = OneLogin_Saml2_XML.query(signatures[0], "./ds:SignedInfo/ds:Reference")
        algorithms = [node.get("Algorithm") for node in OneLogin_Saml2_XML.query(
            signatures[0], "./ds:SignedInfo/ds:SignatureMethod | ./ds:SignedInfo/ds:Reference/ds:DigestMethod")]
        try:
            if len(references) != 1 or not document.get("ID") or references[0].get("URI") != f"#{document.get('ID')}" \
                    or any(algorithm in OneLogin_Saml2_Constants.DEPRECATED_ALGORITHMS for algorithm in algorithms):
                raise OneLogin_Saml2_ValidationError("not a signature of the whole message, or SHA-1",
                                                     OneLogin_Saml2_ValidationError.INVALID_SIGNATURE)
            OneLogin_Saml2_Utils.validate_sign(document, multicerts=list(self.settings.idp_certificates),
                                               xpath="/*/ds:Signature", raise_exceptions=True)
        except Exception:
            raise FederationFailed("saml_logout_signature", "The identity provider's logout message is not "
                                                            "valid.") from None

    def _verified(self, saml_type: str, fields: dict[str, str], query_string: str | None
                  ) -> tuple[OneLogin_Saml2_Settings, dict[str, Any]]:
        """python3-saml's settings and request data for a logout message whose signature is checked: over the
        query (HTTP-Redirect binding, `query_string` given) or inside the XML (HTTP-POST binding, None)."""
        if saml_type not in fields:
            raise FederationFailed("saml_logout_malformed", "The identity provider's logout message is not valid.")
        if query_string is None:
            self._check_enveloped_signature(fields[saml_type])
            # Checked above: python3-saml would look for the Redirect binding's signature in the query.
            return self._onelogin_settings(), self._request_data(self.sls_url, post=fields)
        settings = self._onelogin_settings(want_messages_signed=True)
        request_data = self._request_data(self.sls_url, query=fields, query_string=query_string)
        self._check_message_signature(OneLogin_Saml2_Auth(request_data, settings), fields, saml_type)
        return settings, request_data

    def idp_logout_request(self, fields: dict[str, str], *, query_string: str | None) -> IdPLogoutRequest:
        """The IdP's LogoutRequest that came to our SLS (Profiles §4.4.4.1), checked: in the query
        (HTTP-Redirect binding, `query_string` the query as it came) or a form (HTTP-POST binding, None).

        Raises:
            FederationFailed: unsigned, signed by another key or with SHA-1, another issuer or destination,
                expired, malformed.
        """
        settings, request_data = self._verified("SAMLRequest", fields, query_string)
        try:
            request = OneLogin_Saml2_Logout_Request(settings, fields["SAMLRequest"])
            request.is_valid(request_data, raise_exceptions=True)
            document = OneLogin_Saml2_XML.to_etree(request.get_xml())
            issuer = OneLogin_Saml2_Logout_Request.get_issuer(document)
            name_id = OneLogin_Saml2_Logout_Request.get_nameid(document, key=self._sp_private_key)
            indexes = OneLogin_Saml2_Logout_Request.get_session_indexes(document)
        except (OneLogin_Saml2_ValidationError, OneLogin_Saml2_Error) as error:
            raise FederationFailed(f"saml_logout_invalid:{error.code}", "The identity provider's logout message "
                                                                        "is not valid.") from None
        except Exception:  # malformed base64, deflate or XML
            raise FederationFailed("saml_logout_malformed", "The identity provider's logout message is not "
                                                            "valid.") from None
        # Profiles §4.4.4.1: the Issuer MUST be present (python3-saml checks it only when it is).
        if issuer != self.settings.idp_entity_id:
            raise FederationFailed("saml_logout_issuer", "The identity provider's logout message is not valid.")
        self._check_destination(document)
        return IdPLogoutRequest(request_id=document.get("ID"), name_id=name_id, session_indexes=list(indexes))

    def logout_response(self, *, in_response_to: str, relay_state: str | None) -> OutgoingMessage:
        """Our signed LogoutResponse (Profiles §4.4.3.4, status Success) to the IdP's LogoutRequest, by redirect
        to its SLO URL."""
        settings = self._onelogin_settings()
        builder = OneLogin_Saml2_Logout_Response(settings)
        builder.build(in_response_to)
        parameters = {"SAMLResponse": builder.get_response()} | ({"RelayState": relay_state} if relay_state else {})
        auth = OneLogin_Saml2_Auth(self._request_data(self.sls_url), settings)
        auth.add_response_signature(parameters, OneLogin_Saml2_Constants.RSA_SHA256)
        return OutgoingMessage(url=OneLogin_Saml2_Utils.redirect(self.settings.idp_slo_url, parameters),
                               message_id=builder.id)

    def check_logout_response(self, fields: dict[str, str], *, query_string: str | None, request_id: str) -> None:
        """The IdP's LogoutResponse to our LogoutRequest `request_id` (Profiles §4.4.4.2), in either binding as
        idp_logout_request, checked: signed as a LogoutRequest must be, InResponseTo exactly `request_id`,
        status Success.

        Raises:
            FederationFailed: any check failed.
        """
        settings, request_data = self._verified("SAMLResponse", fields, query_string)
        try:
            response = OneLogin_Saml2_Logout_Response(settings, fields["SAMLResponse"])
            response.is_valid(request_data, request_id=request_id, raise_exceptions=True)
            issuer, status, in_response_to = response.get_issuer(), response.get_status(), \
                response.get_in_response_to()
        except (OneLogin_Saml2_ValidationError, OneLogin_Saml2_Error) as error:
            raise FederationFailed(f"saml_logout_invalid:{error.code}", "The identity provider's logout message "
                                                                        "is not valid.") from None
        except Exception:
            raise FederationFailed("saml_logout_malformed", "The identity provider's logout message is not "
                                                            "valid.") from None
        if issuer != self.settings.idp_entity_id:
            raise FederationFailed("saml_logout_issuer", "The identity provider's logout message is not valid.")
        self._check_destination(response.document)
        # python3-saml compares InResponseTo only when the response has one.
        if in_response_to != request_id:
            raise FederationFailed("saml_logout_in_response_to", "The identity provider's logout message does not "
                                                                 "answer ours.")
        if status != OneLogin_Saml2_Constants.STATUS_SUCCESS:
            raise FederationFailed("saml_logout_status", "The identity provider could not sign you out there.")
