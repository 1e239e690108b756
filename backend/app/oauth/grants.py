"""Authlib grants, specialised: each hook delegates to a service.

Hooks follow Authlib 1.9's names (query_authorization_code, authenticate_refresh_token …).
What a grant persists is written in `save_token`, which first *claims* the
code or refresh token with a conditional UPDATE, so two concurrent
redemptions cannot both succeed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo
from authlib.oidc.core.errors import (RegistrationNotSupportedError, RequestNotSupportedError,
                                      RequestURINotSupportedError)
from authlib.oidc.core.grants.util import is_openid_scope
from joserfc.jwk import KeySet
from werkzeug.http import parse_options_header

from app import errors
from app.extensions import client_cache, current_settings, db, key_store, private_keysets, token_denylist
from app.models import AuthorizationCode, OAuthClient, RefreshToken, TokenEndpointAuthMethod, User
from app.models.tokens import MAX_NONCE_LENGTH
from app.models.base import utcnow
from app.oauth.tokens import current_organization_claims, issuing_in_organization, unverified_claims
from app.request_context import request_actor
from app.security.crypto import decrypt, encrypt, fernet_for
from app.security.request_input import shown
from app.services import authorization_context, client_rules, users
from app.services import grants as grant_store

# Client authentication: what the endpoints accept (here and in oauth/server.py) and discovery
# advertises (oauth/metadata.py), derived from what a client may register (services.client_rules), so
# none of them can drift. Each client uses the one it registered (OAuthClient.check_endpoint_auth_method).
# A confidential client authenticates with a secret or a signed assertion (RFC 6749 §2.3.1, RFC 7523 §2.2);
CONFIDENTIAL_AUTH_METHODS = tuple(method.value for method in client_rules.CONFIDENTIAL_METHODS)
# a public client sends its client_id alone, "none" (RFC 7591 §2).
CLIENT_AUTH_METHODS = (*CONFIDENTIAL_AUTH_METHODS, TokenEndpointAuthMethod.NONE.value)
REFRESH_SUCCESSOR_PURPOSE = "refresh-token-successor"
# How authorization responses are returned (OAuth 2.0 Multiple Response Types §2.1): query only.
RESPONSE_MODES = ("query",)
FORM_MIMETYPE = "application/x-www-form-urlencoded"


def _expiry(token: dict) -> tuple[str, datetime]:
    claims = unverified_claims(token["access_token"])
    return claims["jti"], datetime.fromtimestamp(claims["exp"], UTC)


def grant_organization_claims(organization_id: uuid.UUID | None, user: User) -> dict:
    """The organization claims for tokens issued from a code or refresh token of `organization_id`.

    RFC 6749 §5.2: a grant whose user has left its organization is no longer valid (invalid_grant).
    """
    if organization_id is None:
        return {}
    try:
        return authorization_context.require_member_claims(db.session, organization_id=organization_id, user=user)
    except errors.PermissionDenied as denied:
        raise InvalidGrantError(denied.message) from None


def check_form_body(request: OAuth2Request) -> None:
    """RFC 6749 §3.2 (with §4.1.3), RFC 7009 §2.1, RFC 7662 §2.1: the parameters come in an
    application/x-www-form-urlencoded body; any other body (multipart, JSON) is invalid_request."""
    mimetype = parse_options_header(request.headers.get("Content-Type") or "")[0].lower()
    if mimetype and mimetype != FORM_MIMETYPE:
        raise InvalidRequestError(f"Send the parameters in an {FORM_MIMETYPE} body.")


def check_parameters_not_repeated(request: OAuth2Request) -> None:
    """RFC 6749 §3.1, §3.2: request parameters MUST NOT be included more than once (invalid_request)."""
    repeated = sorted(name for name, values in request.payload.datalist.items() if len(values) > 1)
    if repeated:
        raise InvalidRequestError(f"Parameters sent more than once: {shown(', '.join(repeated))}.")


def check_requested_scope(client: OAuthClient, scope: str | None) -> None:
    """Every grant: a scope the client may not have is invalid_scope, never dropped (RFC 6749 §3.3)."""
    if scope and client.get_allowed_scope(scope) is None:
        refused = " ".join(sorted(set(scope.split()) - set(client.scopes)))
        raise InvalidScopeError(f"The client may not request: {shown(refused)}")


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    # Set by the authorization endpoint before it issues a code, as auth_context is: the
    # organization the user authorized in (services.authorization_context.choose_organization).
    organization_id: uuid.UUID | None = None
    # Likewise: the identity provider the user signed in through, if any (the ID token's idp claim).
    identity_provider_id: uuid.UUID | None = None
    # What validating this grant's authorization request answered (validate_authorization_request).
    _validated_redirect_uri: str | None = None

    def generate_authorization_code(self) -> str:
        return grant_store.new_authorization_code()

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: OAuthClient) -> str:
        # OIDC Core §3.1.2.1: redirect_uri is REQUIRED in an OpenID Connect request, even from a client
        # with one registered URI (which a plain OAuth request may leave out, RFC 6749 §3.1.2.3). Without
        # it nothing says where the error may go: the user gets the error page.
        redirect_uri = request.payload.redirect_uri
        if not redirect_uri and is_openid_scope(request.payload.scope):
            raise InvalidRequestError("redirect_uri is required in an OpenID Connect request.",
                                      state=request.payload.state)
        # Authlib's own message quotes the URI as it came (security/request_input.py, shown).
        if redirect_uri and not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError(f"Redirect URI {shown(redirect_uri)} is not registered for the client.")
        return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)

    @staticmethod
    def validate_no_multiple_request_parameter(request: OAuth2Request) -> None:
        # Authlib's check of five parameters, made before the redirect URI is known, would show its error
        # on a page; every parameter is checked below, once the error can go back to the client.
        pass

    def validate_authorization_request(self) -> str:
        # Authlib validates a request twice on the same grant (get_consent_grant, then
        # create_authorization_response, which the authorization endpoint hands this grant): the
        # request and its user are the same both times, so the second time is the first's answer.
        if self._validated_redirect_uri is None:
            self._validated_redirect_uri = self._validate_authorization_request()
        return self._validated_redirect_uri

    def _validate_authorization_request(self) -> str:
        redirect_uri = super().validate_authorization_request()
        try:
            # RFC 6749 §3.1: no parameter more than once. Validation so far read the first value of each,
            # and redirect_uri only ever names a URI the client registered.
            check_parameters_not_repeated(self.request)
            data = self.request.payload.data
            nonce = data.get("nonce")
            if nonce is not None and len(nonce) > MAX_NONCE_LENGTH:
                raise InvalidRequestError(f"nonce may be at most {MAX_NONCE_LENGTH} characters long.")
            # A value the server cannot honour is invalid_request (§4.1.2.1), not quietly replaced.
            if data.get("response_mode", RESPONSE_MODES[0]) not in RESPONSE_MODES:
                raise InvalidRequestError(f"response_mode must be one of: {', '.join(RESPONSE_MODES)}.")
            max_age = data.get("max_age", "0")
            if not (max_age.isascii() and max_age.isdigit()):  # OIDC Core §3.1.2.1: a number of seconds
                raise InvalidRequestError("max_age must be a whole number of seconds.")
        except OAuth2Error as error:  # the redirect URI is the client's: the error goes back to it
            error.redirect_uri = redirect_uri
            raise
        return redirect_uri

    def save_authorization_code(self, code: str, request) -> None:
        auth_time, amr = self.auth_context
        grant_store.store_authorization_code(
            # The redirect_uri the request named, or None: RFC 6749 §4.1.3 requires it at the token
            # endpoint only if the authorization request included it.
            db.session, code=code, client=request.client, user=request.user, redirect_uri=request.payload.redirect_uri,
            scope=request.scope or "",
            nonce=request.payload.data.get("nonce"), code_challenge=request.payload.data.get("code_challenge"),
            code_challenge_method=request.payload.data.get("code_challenge_method"), auth_time=auth_time, amr=amr,
            organization_id=self.organization_id, identity_provider_id=self.identity_provider_id,
            lifetime=current_settings().AUTHORIZATION_CODE_LIFETIME)

    def query_authorization_code(self, code: str, client: OAuthClient) -> AuthorizationCode | None:
        return grant_store.find_authorization_code(db.session, actor=request_actor(), code=code, client=client,
                                                   denylist=token_denylist())

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # Nothing to delete: save_token already claimed the code, keeping the row
        # so a replay can be recognised and its tokens revoked.
        pass

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        return users.active_user(authorization_code.user)

    def create_token_response(self):
        code: AuthorizationCode = self.request.authorization_code
        # The ID Token is made in this method's after-hook (GatehouseOpenIDCode), inside the block too.
        with issuing_in_organization(grant_organization_claims(code.organization_id, code.user)):
            return super().create_token_response()

    def save_token(self, token: dict) -> None:
        code: AuthorizationCode = self.request.authorization_code
        jti, expires_at = _expiry(token)
        family_id = uuid.uuid4() if "refresh_token" in token else None
        if not grant_store.claim_authorization_code(db.session, code=code, family_id=family_id,
                                                    access_token_jti=jti, access_token_expires_at=expires_at):
            raise InvalidGrantError("The authorization code was already used.")
        if family_id is not None:
            grant_store.store_refresh_token(
                db.session, token=token["refresh_token"], family_id=family_id, client=self.request.client,
                user=code.user, scope=code.scope, auth_time=code.auth_time, amr=code.amr,
                lifetime=self.request.client.refresh_token_lifetime or current_settings().REFRESH_TOKEN_LIFETIME,
                access_token_jti=jti, access_token_expires_at=expires_at, organization_id=code.organization_id)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Rotation on every use; reuse of a rotated token revokes its family (RFC 9700 §4.14.2),
    except the immediately previous token within REFRESH_REUSE_GRACE_SECONDS."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        now = utcnow()
        row = grant_store.find_refresh_token(db.session, token=refresh_token)
        if row is None or not grant_store.is_usable(row, now):
            return None
        if row.rotated_at is not None and not grant_store.in_grace_window(
                db.session, row=row, grace_seconds=current_settings().REFRESH_REUSE_GRACE_SECONDS, now=now):
            grant_store.report_refresh_reuse(db.session, actor=request_actor(), row=row, denylist=token_denylist(), now=now)
            return None
        return row

    def authenticate_user(self, refresh_token: RefreshToken) -> User:
        user = users.active_user(refresh_token.user)
        if user is None:
            # RFC 6749 §5.2: the grant is no longer valid (Authlib would answer invalid_request).
            raise InvalidGrantError("The user of this refresh token cannot sign in.")
        return user

    def issue_token(self, user: User, refresh_token: RefreshToken) -> dict:
        # RFC 6749 §6: a narrower scope may be asked for; the refresh token keeps the original.
        scope = self.request.payload.scope or refresh_token.get_scope()
        # The organization claims are read afresh: current role names, and no token for a former member.
        with issuing_in_organization(grant_organization_claims(refresh_token.organization_id, user)):
            token = self.generate_token(user=user, scope=scope, include_refresh_token=False)
        if self.server.token_generator.refresh_allowed(self.request.client, refresh_token.get_scope()):
            token["refresh_token"] = grant_store.new_refresh_token()
        return token

    def save_token(self, token: dict) -> None:
        old: RefreshToken = self.request.refresh_token
        settings = current_settings()
        fernet = fernet_for(settings.SECRET_KEY, REFRESH_SUCCESSOR_PURPOSE)
        successor = token.get("refresh_token")
        keep_for_grace = successor is not None and settings.REFRESH_REUSE_GRACE_SECONDS > 0
        if grant_store.claim_rotation(db.session, row=old, now=utcnow(),
                                      successor_ciphertext=encrypt(fernet, successor) if keep_for_grace else None):
            if successor is not None:
                jti, expires_at = _expiry(token)
                grant_store.store_refresh_token(
                    db.session, token=successor, family_id=old.family_id, client=old.client, user=old.user,
                    scope=old.scope, auth_time=old.auth_time, amr=old.amr,
                    lifetime=old.client.refresh_token_lifetime or settings.REFRESH_TOKEN_LIFETIME,
                    access_token_jti=jti, access_token_expires_at=expires_at, organization_id=old.organization_id)
            return
        # Already rotated (by an earlier or a concurrent request): within the
        # grace window the caller gets the same successor; otherwise it is reuse.
        db.session.refresh(old)
        now = utcnow()
        if grant_store.in_grace_window(db.session, row=old, grace_seconds=settings.REFRESH_REUSE_GRACE_SECONDS,
                                       now=now):
            previous_successor = decrypt(fernet, old.successor_ciphertext or "")
            if previous_successor is not None:
                token["refresh_token"] = previous_successor
                # The access token is a new one: record it in the family, so that
                # revoking the family denies it too.
                jti, expires_at = _expiry(token)
                grant_store.record_family_access_token(db.session, row=old, access_token_jti=jti,
                                                       access_token_expires_at=expires_at, now=now)
                return
        grant_store.report_refresh_reuse(db.session, actor=request_actor(), row=old, denylist=token_denylist(), now=now)
        raise InvalidGrantError("The refresh token was already used.")

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        # Done in save_token, atomically with issuing the successor.
        pass


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    # RFC 6749 §4.4: the client credentials grant MUST only be used by confidential clients.
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS

    def validate_token_request(self) -> None:
        super().validate_token_request()
        check_requested_scope(self.request.client, self.request.payload.scope)

    def create_token_response(self):
        # No scope requested: the client's whole allowed set (RFC 6749 §3.3 lets the server default).
        scope = self.request.payload.scope or " ".join(self.request.client.scopes)
        # An organization's own machine client acts in that organization (no user: no org_roles).
        claims = client_cache().client_claims(db.session, self.request.client, authorization_context.client_claims)
        with issuing_in_organization(claims):
            token = self.generate_token(scope=scope, include_refresh_token=False)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (RFC 7636 §4.2; RFC 9700 §2.1.1 discourages plain), and
    required whenever the client requires it (always for public clients)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        payload = grant.request.payload.data
        if grant.request.client.require_pkce and not payload.get("code_challenge"):
            raise InvalidRequestError("code_challenge is required (PKCE, RFC 7636).")
        if payload.get("code_challenge") and payload.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        return super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        code: AuthorizationCode = grant.request.authorization_code
        if code.code_challenge and not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'.")
        return super().validate_code_verifier(grant, result)


def user_claims(user: User, scope: str) -> UserInfo:
    """OIDC standard claims by scope (OIDC Core §5.4)."""
    scopes = set((scope or "").split())
    claims = {"sub": str(user.id)}
    if "profile" in scopes:
        claims.update(name=user.name, updated_at=int(user.updated_at.timestamp()))
    if "email" in scopes:
        claims.update(email=user.email, email_verified=user.email_verified)
    return UserInfo(claims)


class GatehouseOpenIDCode(OpenIDCode):
    """ID tokens for the code flow, signed with the keyring key for the client's alg."""

    def validate_openid_authorization_request(self, grant, redirect_uri) -> None:
        # Discovery says request objects, request_uri and registration are not supported: ignoring them
        # would drop whatever the client put only there (nonce, max_age, claims). OIDC Core §6.1, §6.2
        # and §7.2.1 name the error for each; it goes back to the client.
        data = grant.request.payload.data
        for parameter, error in (("request", RequestNotSupportedError), ("request_uri", RequestURINotSupportedError),
                                 ("registration", RegistrationNotSupportedError)):
            if parameter in data:
                raise error(f"The {parameter} parameter is not supported.")
        super().validate_openid_authorization_request(grant, redirect_uri)

    def exists_nonce(self, nonce: str, request) -> bool:
        # A nonce is single-use per client: a repeat is a replay (OIDC Core §3.1.2.1).
        return grant_store.nonce_used(db.session, client_id=request.payload.client_id, nonce=nonce)

    def get_client_algorithm(self, client: OAuthClient) -> str:
        return client.id_token_signed_response_alg or "RS256"

    def resolve_client_private_key(self, client: OAuthClient) -> KeySet:
        return private_keysets().of(key_store().signing_key(self.get_client_algorithm(client)))

    def get_client_claims(self, client: OAuthClient) -> dict:
        settings = current_settings()
        now = int(utcnow().timestamp())
        return {"iss": settings.ISSUER, "aud": client.client_id, "iat": now, "exp": now + settings.ID_TOKEN_LIFETIME}

    def get_encode_header(self, client: OAuthClient) -> dict:
        return {"alg": self.get_client_algorithm(client), "typ": "JWT"}

    def get_authorization_code_claims(self, authorization_code: AuthorizationCode) -> dict:
        # The same organization claims as the access token issued with it (set by AuthorizationCodeGrant).
        claims = super().get_authorization_code_claims(authorization_code) | current_organization_claims()
        if authorization_code.identity_provider_id is not None:
            claims["idp"] = str(authorization_code.identity_provider_id)  # a federated sign-in: through which provider
        return claims

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return user_claims(user, scope)
