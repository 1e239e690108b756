"""The relying-party side of a sign-in at an OpenID Connect provider (the `oidc` kind): the authorization
request we send the browser with, and on its return the RFC 9207 `iss` check, the code exchange, the ID
token's validation (OIDC Core §3.1.3.7) and the UserInfo `sub` check (§5.3.4).

JOSE is joserfc's; the HTTP is the guarded fetcher's. Each rule of the ID token is a small check_*
function raising FederationFailed with a short reason (for the audit trail) and a plain message (for the
person): never the token, the code or the upstream's own words beyond its error code.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from app.errors import FederationFailed
from app.federation.http import FetchError, GuardedFetcher
from app.federation.metadata import UpstreamMetadata
from app.services.identities import VerifiedIdentity

# Asymmetric algorithms only: never `none`, never HS* (a shared secret would let anyone holding our
# client secret mint ID tokens, and an HS* token "signed" with a public key is the classic confusion).
ALLOWED_ID_TOKEN_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
# OIDC Core §3.1.3.7 leaves the acceptable clock skew to us: at most two minutes either way.
MAX_CLOCK_SKEW = 120


# --- ID token checks (OIDC Core §3.1.3.7) ---------------------------------------------------------------


def check_signature(id_token: str, jwks_for_kid: Any) -> dict[str, Any]:
    """The token's claims if its signature verifies with the upstream's key for its `kid`, under an allowed
    algorithm (§3.1.3.7 steps 6-8). `jwks_for_kid(kid)` returns the upstream's JWK Set."""
    try:
        header = extract_compact(id_token.encode()).headers()
    except (JoseError, ValueError):
        raise FederationFailed("malformed_id_token",
                               "The identity provider sent an ID token that is not a JWS.") from None
    if header.get("alg") not in ALLOWED_ID_TOKEN_ALGS:
        raise FederationFailed("id_token_alg", "The identity provider signed its ID token with an algorithm "
                                            "we do not accept.")
    try:
        keys = KeySet.import_key_set(jwks_for_kid(header.get("kid")))
        token = jwt.decode(id_token, keys, algorithms=[header["alg"]])
    except FetchError:
        raise FederationFailed("jwks_unavailable",
                               "The identity provider's signing keys could not be fetched.") from None
    except (JoseError, ValueError, TypeError, KeyError):
        raise FederationFailed("bad_signature", "The identity provider's ID token has an invalid signature.") from None
    return dict(token.claims)


def check_issuer(claims: Mapping[str, Any], issuer: str) -> None:
    """§3.1.3.7 step 2: `iss` MUST exactly match the provider's issuer."""
    if claims.get("iss") != issuer:
        raise FederationFailed("id_token_iss", "The ID token was issued by another identity provider.")


def check_audience(claims: Mapping[str, Any], client_id: str) -> None:
    """§3.1.3.7 steps 3-5: `aud` MUST contain our client_id; with several audiences `azp` MUST be present,
    and when present it MUST be our client_id."""
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        raise FederationFailed("id_token_aud", "The ID token was issued to another application.")
    azp = claims.get("azp")
    if (len(audiences) > 1 and azp is None) or (azp is not None and azp != client_id):
        raise FederationFailed("id_token_azp", "The ID token was issued to another application.")


def check_times(claims: Mapping[str, Any], now: float) -> None:
    """§3.1.3.7 steps 9-10: not expired, not issued in the future, each within MAX_CLOCK_SKEW."""
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, (int, float)) or not isinstance(iat, (int, float)) or isinstance(exp, bool) \
            or isinstance(iat, bool):
        raise FederationFailed("id_token_times", "The ID token lacks its issue or expiry time.")
    if exp <= now - MAX_CLOCK_SKEW:
        raise FederationFailed("id_token_expired", "The ID token has expired.")
    if iat > now + MAX_CLOCK_SKEW:
        raise FederationFailed("id_token_iat", "The ID token was issued in the future.")


def check_nonce(claims: Mapping[str, Any], nonce: str) -> None:
    """§3.1.3.7 step 11: `nonce` MUST equal the one we sent (it binds the token to this browser's request)."""
    value = claims.get("nonce")
    if not isinstance(value, str) or not hmac.compare_digest(value.encode(), nonce.encode()):
        raise FederationFailed("id_token_nonce", "The ID token does not belong to this sign-in.")


def check_subject(claims: Mapping[str, Any]) -> str:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise FederationFailed("id_token_sub", "The ID token names nobody.")
    return subject


def check_userinfo_subject(userinfo: Mapping[str, Any], subject: str) -> None:
    """§5.3.4: the UserInfo `sub` MUST exactly match the ID token's, or its claims must not be used."""
    if userinfo.get("sub") != subject:
        raise FederationFailed("userinfo_sub", "The identity provider described someone else than who signed in.")


def check_authorization_response(params: Mapping[str, str], *, issuer: str | None, iss_advertised: bool) -> str:
    """The code of the authorization response, once it is not an error (RFC 6749 §4.1.2.1) and its `iss`
    is the provider's (RFC 9207 §2.4: required when the provider advertises it, compared whenever present;
    `issuer` None: not compared)."""
    error = params.get("error")
    if error is not None:
        if error == "access_denied":
            raise FederationFailed("access_denied", "The sign-in at the identity provider was cancelled or refused.")
        raise FederationFailed("upstream_error", "The identity provider could not sign you in.")
    iss = params.get("iss")
    if issuer is not None and ((iss_advertised and iss is None) or (iss is not None and iss != issuer)):
        raise FederationFailed("iss_mismatch", "The sign-in response did not come from the identity provider.")
    code = params.get("code")
    if not code:
        raise FederationFailed("no_code", "The identity provider's response is incomplete.")
    return code


# --- the adapter -----------------------------------------------------------------------------------------


class OIDCAdapter:
    """One sign-in's conversation with an OpenID Connect provider."""

    def __init__(self, *, issuer: str, discovery_url: str | None, client_id: str, client_secret: str | None,
                 scopes: list[str], redirect_uri: str, metadata: UpstreamMetadata, fetcher: GuardedFetcher,
                 groups_claim: str | None = None) -> None:
        self.issuer = issuer
        # The claim listing the person's groups (an organization's connection), or None: not read.
        self.groups_claim = groups_claim
        self.discovery_url = discovery_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes
        self.redirect_uri = redirect_uri
        self._metadata = metadata
        self._fetcher = fetcher

    def _discovery(self) -> dict[str, Any]:
        try:
            return self._metadata.discovery(issuer=self.issuer, discovery_url=self.discovery_url)
        except FetchError:
            raise FederationFailed("discovery_unavailable", "The identity provider cannot be reached.") from None

    def uses_pkce(self) -> bool:
        """RFC 7636 with S256, when the provider advertises it (RFC 8414 §2 code_challenge_methods_supported)."""
        return "S256" in (self._discovery().get("code_challenge_methods_supported") or [])

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str | None) -> str:
        """Where to send the browser (OIDC Core §3.1.2.1)."""
        endpoint = self._discovery()["authorization_endpoint"]
        scopes = list(dict.fromkeys(["openid", *self.scopes]))
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": " ".join(scopes), "state": state, "nonce": nonce}
        if code_verifier is not None:
            params |= {"code_challenge": create_s256_code_challenge(code_verifier), "code_challenge_method": "S256"}
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    def finish(self, params: Mapping[str, str], *, nonce: str, code_verifier: str | None,
               now: float) -> VerifiedIdentity:
        """The identity the provider vouches for, from its authorization response `params`.

        Raises:
            FederationFailed: any step failed; nothing about the person is known.
        """
        discovery = self._discovery()
        code = check_authorization_response(
            params, issuer=self.issuer if self.compares_iss_parameter else None,
            iss_advertised=discovery.get("authorization_response_iss_parameter_supported") is True)
        tokens = self._exchange(discovery, code, code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise FederationFailed("no_id_token", "The identity provider did not send an ID token.")
        claims = check_signature(id_token, lambda kid: self._metadata.jwks(discovery["jwks_uri"], kid=kid))
        self.check_claims(claims, now=now, nonce=nonce)
        subject = check_subject(claims)
        if self.calls_userinfo and isinstance(discovery.get("userinfo_endpoint"), str) \
                and isinstance(tokens.get("access_token"), str):
            userinfo = self._userinfo(discovery["userinfo_endpoint"], tokens["access_token"])
            check_userinfo_subject(userinfo, subject)
            claims = userinfo | claims  # the ID token's signed claims win
        return self.identity(claims, subject)

    # --- what each kind may refine -----------------------------------------------------------------

    calls_userinfo = True
    # RFC 9207; Microsoft's issuer is per tenant and its responses carry no iss (see microsoft.py).
    compares_iss_parameter = True

    def check_claims(self, claims: Mapping[str, Any], *, now: float, nonce: str) -> None:
        """OIDC Core §3.1.3.7 on the verified claims."""
        check_issuer(claims, self.issuer)
        check_audience(claims, self.client_id)
        check_times(claims, now)
        check_nonce(claims, nonce)

    def identity(self, claims: Mapping[str, Any], subject: str) -> VerifiedIdentity:
        """Subject = `sub`; the email counts as proved only with `email_verified: true` (a JSON boolean)."""
        amr = claims.get("amr")
        email = claims.get("email")
        return VerifiedIdentity(
            subject=subject, email=email if isinstance(email, str) and email else None,
            email_verified=isinstance(email, str) and claims.get("email_verified") is True,
            name=claims["name"] if isinstance(claims.get("name"), str) else "",
            amr=[value for value in amr if isinstance(value, str)] if isinstance(amr, list) else [],
            groups=self.groups(claims))

    def groups(self, claims: Mapping[str, Any]) -> list[str]:
        """The strings of the groups claim (a JSON array; a lone string counts as one group); none when the
        provider sends none or `groups_claim` is None."""
        value = claims.get(self.groups_claim) if self.groups_claim else None
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        return [group for group in values if isinstance(group, str)]

    def _exchange(self, discovery: dict[str, Any], code: str, code_verifier: str | None) -> dict[str, Any]:
        """RFC 6749 §4.1.3 with the client authentication the provider supports (client_secret_basic is
        the default of OIDC Discovery §3 when it lists none)."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        methods = discovery.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if self.client_secret is None:
            form["client_id"] = self.client_id
        elif "client_secret_basic" in methods:
            # RFC 6749 §2.3.1: each part form-urlencoded before the Base64.
            pair = f"{_form_encode(self.client_id)}:{_form_encode(self.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": self.client_id, "client_secret": self.client_secret}
        try:
            response = self._fetcher.fetch(discovery["token_endpoint"], method="POST", headers=headers,
                                           body=urlencode(form).encode())
            tokens = response.json()
        except FetchError:
            raise FederationFailed("token_unavailable", "The identity provider did not answer.") from None
        if response.status != 200 or not isinstance(tokens, dict) or "error" in tokens:
            raise FederationFailed("token_error", "The identity provider refused to complete the sign-in.")
        return tokens

    def _userinfo(self, endpoint: str, access_token: str) -> dict[str, Any]:
        try:
            response = self._fetcher.fetch(endpoint, headers={"Authorization": f"Bearer {access_token}"})
            userinfo = response.json()
        except FetchError:
            raise FederationFailed("userinfo_unavailable", "The identity provider did not answer.") from None
        if response.status != 200 or not isinstance(userinfo, dict):
            raise FederationFailed("userinfo_error", "The identity provider did not describe who signed in.")
        return userinfo


def _form_encode(value: str) -> str:
    return urlencode({"": value})[1:]
