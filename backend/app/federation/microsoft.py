"""Signing in with Microsoft Entra ID (the v2.0 endpoints), an OpenID provider with three rules of its own.

- For the multi-tenant `common` and `organizations` the discovery document's issuer is a template,
  `{authority}/{tenantid}/v2.0`: the token's `tid` is substituted and the result must equal its `iss`;
  and `tid` must be one of `allowed_tenants` unless `allow_any_tenant` (otherwise anyone with any
  Entra ID tenant, including one they made themselves, could sign in).
- The person is `tid` + `oid` (immutable per tenant), never `email` or `preferred_username`: those are
  editable by a tenant's administrators, and trusting them is the "nOAuth" account takeover.
- An email counts as verified only with `xms_edov: true` (Microsoft's "email domain owner verified"
  optional claim); Entra ID's `email` claim alone is not proof.
The authorization response of Entra ID carries no RFC 9207 `iss` and its discovery does not advertise
it; UserInfo (Microsoft Graph) is not called: the ID token says all we use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.errors import FederationFailed
from app.federation.oidc import OIDCAdapter, check_audience, check_issuer, check_nonce, check_times
from app.services.identities import VerifiedIdentity

TENANT_TEMPLATE = "{tenantid}"
MULTI_TENANT = frozenset({"common", "organizations"})
# The tenant of personal Microsoft accounts: the issuer of `consumers` names it.
CONSUMERS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"


def issuer_for(authority: str, tenant: str) -> str:
    """The issuer in the discovery document of `tenant` (a template for the multi-tenant ones)."""
    tenant_part = TENANT_TEMPLATE if tenant in MULTI_TENANT else CONSUMERS_TENANT_ID if tenant == "consumers" \
        else tenant
    return f"{authority}/{tenant_part}/v2.0"


def check_tenant(claims: Mapping[str, Any], *, tenant: str, allowed_tenants: list[str],
                 allow_any_tenant: bool) -> str:
    """The token's `tid`, once it is a tenant this provider admits."""
    tid = claims.get("tid")
    if not isinstance(tid, str) or not tid:
        raise FederationFailed("no_tenant", "The Microsoft ID token names no tenant.")
    if tenant in MULTI_TENANT and not allow_any_tenant and tid.lower() not in allowed_tenants:
        raise FederationFailed("tenant_not_allowed", "Your organization's Microsoft accounts may not sign in here.")
    return tid


class MicrosoftAdapter(OIDCAdapter):
    calls_userinfo = False
    compares_iss_parameter = False

    def __init__(self, *, authority: str, tenant: str, allowed_tenants: list[str], allow_any_tenant: bool,
                 **common: Any) -> None:
        super().__init__(issuer=issuer_for(authority, tenant),
                         discovery_url=f"{authority}/{tenant}/v2.0/.well-known/openid-configuration", **common)
        self.tenant = tenant
        self.allowed_tenants = allowed_tenants
        self.allow_any_tenant = allow_any_tenant

    def check_claims(self, claims: Mapping[str, Any], *, now: float, nonce: str) -> None:
        tid = check_tenant(claims, tenant=self.tenant, allowed_tenants=self.allowed_tenants,
                           allow_any_tenant=self.allow_any_tenant)
        check_issuer(claims, self.issuer.replace(TENANT_TEMPLATE, tid))
        check_audience(claims, self.client_id)
        check_times(claims, now)
        check_nonce(claims, nonce)

    def identity(self, claims: Mapping[str, Any], subject: str) -> VerifiedIdentity:
        oid = claims.get("oid")
        if not isinstance(oid, str) or not oid:
            raise FederationFailed("no_oid", "The Microsoft ID token names nobody.")
        email = claims.get("email")
        email = email if isinstance(email, str) and email else None
        return VerifiedIdentity(subject=f"{claims['tid']}:{oid}", email=email,
                                email_verified=email is not None and claims.get("xms_edov") is True,
                                name=claims["name"] if isinstance(claims.get("name"), str) else "",
                                groups=self.groups(claims))
