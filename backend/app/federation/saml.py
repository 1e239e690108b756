"""The service-provider side of SAML 2.0 Web Browser SSO (SAML Profiles §4.1) for a `saml` connection,
on python3-saml: the signed AuthnRequest we send the browser with (HTTP-Redirect binding, RSA-SHA256),
our metadata, and the validation of the Response posted back to the ACS.

python3-saml validates with every option on (strict, wantAssertionsSigned, rejectDeprecatedAlgorithm,
the pinned IdP certificates only, audience, one assertion). What it leaves loose is checked here after it:
Destination and Recipient exactly equal to our ACS URL (it accepts a prefix or a substring), and
InResponseTo present and equal to the request we sent (it skips the comparison when either is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from app.errors import FederationFailed
from app.models import IdentityProvider
from app.models.federation import SAMLSettings
from app.services.identities import VerifiedIdentity

# python3-saml's one clock-skew allowance (NotBefore, NotOnOrAfter) is a class constant of 300 s; ours is 2 min.
OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT = 120
MAX_CLOCK_SKEW = timedelta(seconds=OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT)
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
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
    """What a valid Response vouches for, and what the replay cache keeps."""

    identity: VerifiedIdentity
    assertion_id: str
    expires_at: datetime
    groups: list[str]


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

    def _onelogin_settings(self) -> OneLogin_Saml2_Settings:
        idp: dict[str, Any] = {
            "entityId": self.settings.idp_entity_id,
            "singleSignOnService": {"url": self.settings.idp_sso_url,
                                    "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT},
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
                         "wantAssertionsSigned": True, "wantMessagesSigned": False, "wantNameId": True,
                         "rejectDeprecatedAlgorithm": True, "rejectUnsolicitedResponsesWithInResponseTo": True,
                         "signatureAlgorithm": OneLogin_Saml2_Constants.RSA_SHA256,
                         "digestAlgorithm": OneLogin_Saml2_Constants.SHA256,
                         "requestedAuthnContext": False, "wantAttributeStatement": False, "metadataValidUntil": None,
                         "metadataCacheDuration": None},
        }, sp_validation_only=False)

    def _request_data(self, url: str, post: dict[str, str] | None = None) -> dict[str, Any]:
        """What python3-saml knows of the request: the URL it came to is our own configured one."""
        parts = urlsplit(url)
        return {"https": "on" if parts.scheme == "https" else "off", "http_host": parts.netloc,
                "script_name": parts.path, "get_data": {}, "post_data": post or {}}

    def metadata_xml(self) -> str:
        """Our SP metadata: entity id, ACS, SLS and the signing certificate (SAML Metadata §2.4.4)."""
        metadata = self._onelogin_settings().get_sp_metadata()
        return metadata.decode() if isinstance(metadata, bytes) else metadata

    def authn_request(self, *, relay_state: str) -> tuple[str, str]:
        """The URL sending the browser to the IdP with a signed AuthnRequest, and the request's ID."""
        auth = OneLogin_Saml2_Auth(self._request_data(self.acs_url), self._onelogin_settings())
        url = auth.login(return_to=relay_state, set_nameid_policy=self.settings.name_id_format is not None)
        return url, auth.get_last_request_id()

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
        for name in (mapped,) if mapped else DEFAULT_ATTRIBUTES[key]:
            if attributes.get(name):
                return [value for value in attributes[name] if isinstance(value, str)]
        return []

    def _assertion(self, response: OneLogin_Saml2_Response, now: datetime) -> SAMLAssertion:
        subject, name_id_format = response.get_nameid(), response.get_nameid_format()
        if not subject or name_id_format == TRANSIENT:
            # A transient NameID changes every sign-in: nobody could be found by it again.
            raise FederationFailed("saml_subject", "The identity provider did not say who you are in a lasting way.")
        attributes = response.get_attributes()
        email = next(iter(self._attribute(attributes, "email")), None)
        if email is None and name_id_format == OneLogin_Saml2_Constants.NAMEID_EMAIL_ADDRESS:
            email = subject
        name = next(iter(self._attribute(attributes, "name")), "") or " ".join(
            part for key in ("given_name", "family_name") for part in self._attribute(attributes, key)[:1])
        not_on_or_after = response.get_assertion_not_on_or_after()
        expires_at = (datetime.fromtimestamp(not_on_or_after, UTC) if not_on_or_after else now) + MAX_CLOCK_SKEW
        # The assertion was signed by the pinned IdP: the email it asserts is as proved as the IdP makes it.
        identity = VerifiedIdentity(subject=subject, email=email, email_verified=email is not None, name=name)
        return SAMLAssertion(identity=identity, assertion_id=response.get_assertion_id(), expires_at=expires_at,
                             groups=self._attribute(attributes, "groups"))
