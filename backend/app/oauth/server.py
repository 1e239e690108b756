"""The Authlib authorization server, its endpoints and the bearer-token validator.

`authorization` is created unbound at import and configured by `init_oauth(app)`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from functools import cached_property

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError, UnsupportedResponseTypeError
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import UserInfoEndpoint
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import Flask, Request, current_app
from flask import request as flask_request
from joserfc.jwk import KeySet
from werkzeug.datastructures import MultiDict
from redis.exceptions import RedisError

from app.extensions import client_cache, current_settings, db, key_store, token_denylist, verified_tokens
from app.models import OAuthClient, RefreshToken, User
from app.oauth import grants
from app.oauth.tokens import AccessTokenGenerator
from app.request_context import request_actor
from app.security.request_input import shown
from app.services import audit, authorization_context, revocations
from app.services.access_tokens import AccessToken, token_user, verify_access_token
from app.stores.denylist import CLAIM_PREFIX
from app.services import grants as grant_store

log = logging.getLogger(__name__)


class FormPayload(OAuth2Payload):
    """A request's parameters from its form body alone."""

    def __init__(self, form: MultiDict) -> None:
        self._form = form

    @property
    def data(self) -> MultiDict:
        return self._form

    @cached_property
    def datalist(self) -> defaultdict[str, list]:
        return defaultdict(list, self._form.lists())


class FormBodyRequest(FlaskOAuth2Request):
    """A request to the token, introspection or revocation endpoint, whose parameters come in the
    form body (RFC 6749 §3.2 and §4.1.3, RFC 7009 §2.1, RFC 7662 §2.1), never the query string:
    Authlib's Flask request reads both, so `?grant_type=` chose the grant."""

    def __init__(self, request: Request) -> None:
        # Not FlaskOAuth2Request's __init__: of the URL, Authlib reads only the scheme and host
        # (InsecureTransportError), while request.url turns the whole URL into an IRI on every read;
        # and OAuth2Request tests `headers or {}`, which counts every key of the WSGI environ.
        OAuth2Request.__init__(self, request.method, f"{request.scheme}://{request.host}{request.path}")
        self.headers = request.headers
        self._request = request
        self.payload = FormPayload(request.form)

    @property
    def args(self) -> MultiDict:
        return MultiDict()


class GatehouseAuthorizationServer(AuthorizationServer):
    token_generator: AccessTokenGenerator

    def query_client(self, client_id: str) -> OAuthClient | None:
        return client_cache().get(db.session, client_id)

    def create_oauth2_request(self, request: OAuth2Request | None) -> OAuth2Request:
        # The authorization, UserInfo and logout views pass no request (Flask's own is used); the token,
        # introspection and revocation views a FormBodyRequest, and create_token_response below the
        # one it made: OAuth2Requests already.
        if isinstance(request, OAuth2Request):
            return request
        return FlaskOAuth2Request(flask_request)

    def get_authorization_grant(self, request):
        if any(grant_cls.check_authorization_endpoint(request) for grant_cls, _ in self._authorization_grants):
            return super().get_authorization_grant(request)
        # Authlib's error here quotes response_type as it came, which its own check of the description
        # then refuses (a ValueError, a 500): the same error, with the value `shown`.
        redirect_uri = self._known_redirect_uri(request)
        if not request.payload.response_type:
            # RFC 6749 §4.1.2.1: a missing response_type is a missing required parameter, invalid_request
            # (Authlib reports unsupported_response_type), sent where Authlib would have sent its error.
            raise InvalidRequestError("The response_type parameter is required.", redirect_uri=redirect_uri)
        response_type = request.payload.response_type
        raise UnsupportedResponseTypeError(response_type, f"The response type {shown(response_type)} is not supported.",
                                           redirect_uri=redirect_uri)

    def _known_redirect_uri(self, request: OAuth2Request) -> str | None:
        """Where an authorization error may go: only a redirect URI the client registered (RFC 6749
        §4.1.2.1), as Authlib's get_authorization_grant decides it."""
        client = self.query_client(request.payload.client_id) if request.payload.client_id else None
        if client is None:
            return None
        requested = request.payload.redirect_uri
        if requested:
            return requested if client.check_redirect_uri(requested) else None
        return client.get_default_redirect_uri()

    def create_token_response(self, request=None):
        """RFC 6749 §3.2 and §5.2: a token request whose body is not form-encoded, without grant_type,
        or with a parameter repeated, is invalid_request, before any grant looks at it (Authlib calls a missing grant_type
        unsupported_grant_type, and reads the first of repeated values)."""
        oauth_request = self.create_oauth2_request(request)
        try:
            grants.check_form_body(oauth_request)
            grants.check_parameters_not_repeated(oauth_request)
            if not oauth_request.payload.grant_type:
                raise InvalidRequestError("The grant_type parameter is required.")
        except OAuth2Error as error:
            return self.handle_error_response(oauth_request, error)
        return super().create_token_response(oauth_request)

    def authenticate_client(self, request, methods, endpoint="token"):
        """RFC 6749 §2.3: a client uses one authentication method per request; credentials sent two
        ways are invalid_request (§5.2)."""
        presented = [method for method, present in (
            ("HTTP Basic", (request.headers.get("Authorization") or "").lower().startswith("basic ")),
            ("client_secret", "client_secret" in request.form),
            ("client_assertion", "client_assertion" in request.form)) if present]
        if len(presented) > 1:
            raise InvalidRequestError(f"Authenticate the client one way only, not with {' and '.join(presented)}.")
        scheme, _, credentials = (request.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() == "basic" and not credentials.strip():
            # Authlib fails to split a bare "Basic " (a ValueError, a 500) instead of refusing it.
            raise InvalidClientError(status_code=401, description="The HTTP Basic credentials are empty.")
        try:
            return super().authenticate_client(request, methods, endpoint)
        except UnicodeDecodeError:
            # Authlib decodes HTTP Basic credentials as UTF-8 and lets the error through.
            raise InvalidClientError(status_code=401,
                                     description="The HTTP Basic credentials are not valid UTF-8.") from None

    def save_token(self, token: dict, request) -> None:
        # Every grant persists what it issues in its own save_token (oauth/grants.py).
        raise NotImplementedError("grants save their own tokens")

    def validate_requested_scope(self, scope: str | None) -> None:
        # Scopes are checked against the requesting client, in each grant.
        pass

    def handle_response(self, status_code, payload, headers):
        # Compact JSON, as jsonify sends it; Authlib's Flask integration writes ", " and ": ".
        if isinstance(payload, dict):
            payload = current_app.json.dumps(payload, separators=(",", ":"))
        return super().handle_response(status_code, payload, headers)

    def handle_error_response(self, request, error):
        # RFC 6749 §5.2: a failed client authentication is 401 with a challenge.
        if isinstance(error, InvalidClientError):
            error.status_code = 401
        return super().handle_error_response(request, error)


class TemporarilyUnavailable(OAuth2Error):
    """The database is unavailable (app.database.DATABASE_UNAVAILABLE): RFC 6749 §4.1.2.1's
    temporarily_unavailable, with the 503 it stands for, in the §5.2 error body."""

    error = "temporarily_unavailable"
    description = "The server is temporarily unable to handle the request; retry later."
    status_code = 503


class RequestTooLarge(InvalidRequestError):
    """A body over MAX_CONTENT_LENGTH or Werkzeug's form limits: a malformed request, RFC 6749 §5.2's
    invalid_request, with the 413 HTTP gives it (RFC 9110 §15.5.14) in place of §5.2's default 400."""

    description = "The request body is too large."
    status_code = 413


class MethodRefused(InvalidRequestError):
    """A method the endpoint does not take (RFC 6749 §3.2: the token endpoint takes POST): a malformed
    request, invalid_request, with HTTP's 405 (RFC 9110 §15.5.6) in place of §5.2's default 400."""

    status_code = 405

    def __init__(self, allowed: list[str]) -> None:
        super().__init__(description=f"This endpoint accepts {', '.join(allowed)} only.")


def database_unavailable(error: Exception) -> TemporarilyUnavailable:
    """The protocol error for a request the database failed, logged."""
    # The exception's class only: its text may carry the statement's parameters.
    log.warning("database unavailable: %s", type(error).__name__)
    return TemporarilyUnavailable()


class IssuerInResponse(IssuerParameter):
    """RFC 9207: `iss` on every authorization response, errors included."""

    def get_issuer(self) -> str:
        return current_settings().ISSUER


# --- tokens as seen by introspection, revocation and resource endpoints ---

class AccessTokenRecord:
    """A verified JWT access token, with the methods Authlib's endpoints call."""

    def __init__(self, token: AccessToken) -> None:
        self.token = token
        self.scope = token.scope

    def check_client(self, client: OAuthClient) -> bool:
        return self.token.client_id == client.client_id

    def is_expired(self) -> bool:
        return self.token.exp <= time.time()

    def is_revoked(self) -> bool:
        return False  # verify_access_token already consulted the denylist

    def get_scope(self) -> str:
        return self.token.scope

    def get_client(self) -> OAuthClient | None:
        return client_cache().get(db.session, self.token.client_id)

    def get_user(self) -> User | None:
        return token_user(db.session, self.token)


def _find_access_token(token_string: str) -> AccessTokenRecord | None:
    verified = verify_access_token(token_string, settings=current_settings(), keys=key_store(),
                                   verified_tokens=verified_tokens(), denied=token_denylist())
    return AccessTokenRecord(verified) if verified else None


def _find_active_refresh_token(token_string: str) -> RefreshToken | None:
    return grant_store.find_active_refresh_token(db.session, token=token_string)


def _find_revocable_refresh_token(token_string: str) -> RefreshToken | None:
    return grant_store.find_revocable_refresh_token(db.session, token=token_string)


def _find_token(token_string: str, hint: str | None,
                find_refresh_token: Callable[[str], RefreshToken | None]) -> AccessTokenRecord | RefreshToken | None:
    # The hint only orders the lookups: a wrong or unknown hint still finds the token, since the
    # server MUST extend its search to all its token types (RFC 7009 §2.1, RFC 7662 §2.1).
    lookups = [find_refresh_token, _find_access_token]
    if hint != "refresh_token":
        lookups.reverse()
    # A JWS compact serialisation is never one of our refresh tokens (base64url, without dots): an
    # access token that did not verify (revoked, or unknown to an outage) needs no database read.
    if token_string.count(".") == 2:
        lookups.remove(find_refresh_token)
    for lookup in lookups:
        found = lookup(token_string)
        if found is not None:
            return found
    return None


class TokenParameters:
    """The request parameters of introspection and revocation. `token` is REQUIRED; `token_type_hint`
    is only a hint, which the server MAY ignore (RFC 7009 §2.1, RFC 7662 §2.1). Authlib refuses a
    hint other than access_token and refresh_token with unsupported_token_type, but RFC 7662 has no
    such error, and RFC 7009 §2.2.1 keeps it for a token *type* the server cannot revoke, not for an
    unknown hint: both token types RFC 7009 defines are revocable here, so it never applies."""

    def check_params(self, request, client) -> None:
        grants.check_form_body(request)
        grants.check_parameters_not_repeated(request)
        if "token" not in request.form:
            raise InvalidRequestError()


class GatehouseIntrospection(TokenParameters, IntrospectionEndpoint):
    """RFC 7662. A client may introspect tokens issued to it, and access tokens
    whose audience names it (a resource server); anything else is active:false,
    rotated refresh tokens included."""

    CLIENT_AUTH_METHODS = grants.CONFIDENTIAL_AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return _find_token(token_string, token_type_hint, _find_active_refresh_token)

    def check_permission(self, token, client, request) -> bool:
        if token.check_client(client):
            return True
        if isinstance(token, AccessTokenRecord):
            aud = token.token.claims.get("aud")
            return client.client_id in ([aud] if isinstance(aud, str) else aud or [])
        return False

    def create_introspection_payload(self, token):
        if token is None:
            return {"active": False}
        if isinstance(token, AccessTokenRecord):
            claims = token.token.claims
            # RFC 7662 §2.2 allows further members: an organization's token says which one.
            payload = {key: claims[key] for key in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti",
                                                    *authorization_context.ORGANIZATION_CLAIMS) if key in claims}
            payload.update(active=True, token_type="Bearer")
            return payload
        # No token_type: RFC 7662 §2.2's is the access token type (RFC 6749 §7.1); a refresh token has none.
        return {"active": True, "scope": token.scope,
                "client_id": token.client.client_id, "sub": str(token.user_id), "iss": current_settings().ISSUER,
                "exp": _ts(token.expires_at), "iat": _ts(token.created_at)}


def _ts(value: datetime) -> int:
    return int(value.timestamp())


class GatehouseRevocation(TokenParameters, RevocationEndpoint):
    """RFC 7009. Access tokens go on the denylist until they expire; a refresh token
    revokes its whole family, even one already rotated (it may still be in the grace
    window, and its family is live). Unknown tokens still get 200 (§2.2)."""

    CLIENT_AUTH_METHODS = grants.CLIENT_AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return _find_token(token_string, token_type_hint, _find_revocable_refresh_token)

    def revoke_token(self, token, request) -> None:
        if isinstance(token, AccessTokenRecord):
            revocations.deny_token(db.session, denylist=token_denylist(), key=token.token.jti,
                                   expires_at=token.token.exp)
            target_type, target_id = "access_token", token.token.jti
        else:
            grant_store.revoke_family(db.session, family_id=token.family_id, denylist=token_denylist())
            target_type, target_id = "refresh_token_family", token.family_id
        audit.record_event(db.session, actor=request_actor(), action="oauth.token_revoked",
                           target_type=target_type, target_id=target_id,
                           details={"client_id": request.client.client_id})


class PrivateKeyJWT(JWTBearerClientAssertion):
    """private_key_jwt client authentication (RFC 7523 §2.2, OIDC Core §9) against the client's registered JWKS."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self) -> list[str]:
        issuer = current_settings().ISSUER
        return [issuer, f"{issuer.rstrip('/')}/oauth2/token"]

    def resolve_client_public_key(self, client: OAuthClient) -> KeySet:
        if not client.jwks:
            raise InvalidClientError(description="The client has no registered JWKS.")
        return KeySet.import_key_set(client.jwks)

    def validate_jti(self, claims: dict, jti: str) -> bool:
        # An assertion is single-use: claim its jti, atomically, for as long as it is
        # accepted, which is until exp plus the clock-skew leeway (RFC 7523 §3, items 4 and 7).
        try:
            return token_denylist().claim(f"{CLAIM_PREFIX}{claims['iss']}:{jti}", int(claims["exp"]) + self.leeway)
        except RedisError as error:
            # Replay cannot be ruled out without Redis: refused, as a temporary condition.
            log.warning("client assertion refused: Redis unavailable (%s)", type(error).__name__)
            raise TemporarilyUnavailable() from None


class MissingBearerToken(OAuth2Error):
    """RFC 6750 §3.1: a request without Bearer credentials gets 401 and a bare `Bearer` challenge,
    with no error code in it (Authlib's default sends the unregistered missing_authorization or
    unsupported_token_type). The body keeps the protocol error shape."""

    error = "invalid_request"
    description = "The request carries no Bearer access token (RFC 6750 section 2.1)."
    status_code = 401

    def get_headers(self):
        return super().get_headers() + [("WWW-Authenticate", "Bearer")]


class InsufficientScope(InsufficientScopeError):
    """RFC 6750 §3 and §3.1: 403 insufficient_scope, with a Bearer challenge that names the scope the
    resource requires (OIDC Core §5.3.3: UserInfo errors are RFC 6750 §3's). Authlib's class has no challenge."""

    def __init__(self, required_scope: str | None) -> None:
        super().__init__()
        self.required_scope = required_scope

    def get_headers(self):
        params = [f'error="{self.error}"', f'error_description="{self.get_error_description()}"']
        if self.required_scope:
            params.append(f'scope="{self.required_scope}"')
        return super().get_headers() + [("WWW-Authenticate", "Bearer " + ", ".join(params))]


class BearerProtector(ResourceProtector):
    def parse_request_authorization(self, request):
        scheme, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingBearerToken()
        return super().parse_request_authorization(request)


class AccessTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> AccessTokenRecord | None:
        return _find_access_token(token_string)

    def validate_token(self, token, scopes, request) -> None:
        try:
            super().validate_token(token, scopes, request)
        except InsufficientScopeError:
            # Authlib's `scopes` are alternatives; a challenge names the scope only when there is one.
            raise InsufficientScope(scopes[0] if len(scopes) == 1 else None) from None


class EndUserTokenValidator(AccessTokenValidator):
    """For UserInfo (OIDC Core §5.3): the token must describe an active end-user of a client that
    still exists. A client-credentials token, one whose user is suspended or gone, or one whose
    client was deleted is invalid_token (RFC 6750 §3.1), not insufficient_scope or a server error."""

    def authenticate_token(self, token_string: str) -> AccessTokenRecord | None:
        token = super().authenticate_token(token_string)
        if token is None or token.get_user() is None or token.get_client() is None:
            return None
        return token


class GatehouseUserInfo(UserInfoEndpoint):
    def generate_user_info(self, user: User, scope: str):
        claims = grants.user_claims(user, scope)
        org_id = current_token.token.claims.get("org_id")
        if org_id and authorization_context.ORGANIZATION_SCOPE in scope.split():
            # The membership as it is now (current role names); a former member gets no organization claims.
            claims.update(authorization_context.member_claims(db.session, organization_id=org_id, user=user) or {})
        return claims

    def get_issuer(self) -> str:
        return current_settings().ISSUER


class GatehouseEndSession(EndSessionEndpoint):
    def validate_request(self, request: OAuth2Request):
        # As for authorization requests (RFC 6749 §3.1): a repeated id_token_hint or
        # post_logout_redirect_uri would let two readers of one request see two requests.
        grants.check_parameters_not_repeated(request)
        return super().validate_request(request)

    def get_server_jwks(self) -> dict:
        return key_store().jwks()

    def end_session(self, end_session_request) -> None:
        # The browser session is ended by the view, which owns the cookie.
        pass


def init_oauth(app: Flask) -> GatehouseAuthorizationServer:
    """Build this app's authorization server. One per app (not a module
    singleton): Authlib's registries accumulate, and tests build many apps."""
    server = GatehouseAuthorizationServer()
    server.init_app(app)
    generator = AccessTokenGenerator(app.extensions["gatehouse.settings"], app.extensions["gatehouse.keys"],
                                     app.extensions["gatehouse.stores"].private_keysets)
    server.token_generator = generator
    server.register_token_generator("default", generator)
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT())
    server.register_grant(grants.AuthorizationCodeGrant,
                          [grants.S256CodeChallenge(required=True), grants.GatehouseOpenIDCode()])
    server.register_grant(grants.RefreshTokenGrant)
    server.register_grant(grants.ClientCredentialsGrant)
    server.register_extension(IssuerInResponse())
    server.register_endpoint(GatehouseIntrospection)
    server.register_endpoint(GatehouseRevocation)
    server.register_endpoint(GatehouseEndSession)
    protector = BearerProtector()
    protector.register_token_validator(EndUserTokenValidator())
    server.register_endpoint(GatehouseUserInfo(resource_protector=protector))
    app.extensions["gatehouse.oauth"] = server
    return server


def oauth_server() -> GatehouseAuthorizationServer:
    return current_app.extensions["gatehouse.oauth"]
