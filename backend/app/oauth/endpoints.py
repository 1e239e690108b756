"""Protocol endpoints (never enveloped): discovery, JWKS, authorize, token,
userinfo, introspection, revocation and RP-initiated logout."""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InsecureTransportError, InvalidRequestError
from authlib.oidc.core.errors import ConsentRequiredError, InteractionRequiredError, LoginRequiredError
from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request, session, url_for
from joserfc.jws import extract_compact
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from app import errors
from app.database import DATABASE_UNAVAILABLE
from app.extensions import csrf, current_settings, db, field_cipher, key_store
from app.federation.saml import SAMLConnection
from app.models import IdentityProvider, Organization, UserSession
from app.models.base import utcnow
from app.oauth.cors import add_cors_headers, cors_route
from app.oauth.metadata import authorization_server_metadata, openid_configuration
from app.oauth.server import (FormBodyRequest, IssuerInResponse, MethodRefused, RequestTooLarge, database_unavailable,
                              oauth_server)
from app.request_context import request_actor
from app.security.tokens import new_token
from app.services import authorization_context, consents, identities, saml_logout, sessions
from app.services.access_tokens import is_access_token_header
from app.security.request_input import RefusedInput
from app.security.browser_session import FRESH_LOGIN_KEY, clear_session_cookie, current_browser_session

bp = Blueprint("oauth", __name__)
bp.after_request(add_cors_headers)

AMR_PASSWORD = ["pwd"]
# Relying parties may cache the key set: a new key is published KEY_ACTIVATION_DELAY before it signs.
JWKS_CACHE_CONTROL = "public, max-age=300"
# The organization picker's field: only ever posted by org_picker.html, never a protocol parameter.
PICKED_ORGANIZATION = "chosen_organization"
# The endpoints a browser is sent to, which answer errors on a page unless the client's redirect URI is known.
BROWSER_ENDPOINTS = {"oauth.authorize", "oauth.logout"}


@bp.errorhandler(InsecureTransportError)
def _plain_http(error: InsecureTransportError) -> Response:
    """Requests to the token, introspection, revocation and UserInfo endpoints MUST use TLS (RFC 6749
    §3.2, RFC 7662 §4, RFC 7009 §2, OIDC Core §5.3). Authlib refuses plain http to any host but
    loopback while it builds the request, before its endpoints turn errors into responses: answer
    RFC 6749 §5.2's invalid_request (400, no-store) instead of a 500. Authorize and logout catch it
    as an OAuth2Error and show their error page."""
    return oauth_server().handle_error_response(None, InvalidRequestError(
        description="This endpoint requires TLS: send the request over https."))


def _refusal(error: OAuth2Error) -> Response:
    """A request refused before a client or its redirect URI is known: on the error page for the browser
    endpoints, with the error's status; in an RFC 6749 §5.2 body for the others."""
    if request.endpoint in BROWSER_ENDPOINTS:
        return Response(render_template("oauth_error.html", error=error), status=error.status_code)
    return oauth_server().handle_error_response(None, error)


@bp.errorhandler(RefusedInput)
def _refused_input(error: RefusedInput) -> Response:
    """A value the server cannot store (security/request_input.py) is a malformed request, invalid_request
    (RFC 6749 §4.1.2.1, §5.2)."""
    return _refusal(InvalidRequestError(description=error.description))


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge) -> Response:
    """A body over the limits (MAX_CONTENT_LENGTH, MAX_FORM_PARTS) is invalid_request too, with its 413:
    a client reads the §5.2 body, not Werkzeug's HTML page."""
    return _refusal(RequestTooLarge())


def refused_method(error: MethodNotAllowed) -> Response | None:
    """A 405 from a protocol endpoint that answers JSON (token, introspection, revocation, UserInfo, JWKS,
    the OpenID and RFC 8414 metadata): RFC 6749 §5.2's invalid_request, with the 405 and its Allow header
    (RFC 9110 §15.5.6), not Werkzeug's HTML page. None for any other path. Routing refuses the method
    before a blueprint is known, so only an app-wide handler sees the error: the app's asks here first
    (create_app)."""
    allowed = sorted(error.valid_methods or ())
    try:
        endpoint = current_app.url_map.bind_to_environ(request.environ).match(method=allowed[0])[0]
    except (HTTPException, IndexError):
        return None
    if not endpoint.startswith(f"{bp.name}.") or endpoint in BROWSER_ENDPOINTS:
        return None
    response = oauth_server().handle_error_response(None, MethodRefused(
        [method for method in allowed if method not in ("HEAD", "OPTIONS")]))
    response.headers["Allow"] = ", ".join(allowed)
    return response


def _database_unavailable(error: Exception) -> Response:
    """503 while the database is down: temporarily_unavailable (no redirect from the browser endpoints:
    the client and its redirect URIs cannot be read to validate one)."""
    return _refusal(database_unavailable(error))


for _unavailable in DATABASE_UNAVAILABLE:
    bp.register_error_handler(_unavailable, _database_unavailable)


@bp.get("/.well-known/openid-configuration")
def discovery():
    return jsonify(openid_configuration(current_settings()))


@bp.get("/.well-known/oauth-authorization-server")
def oauth_metadata():
    return jsonify(authorization_server_metadata(current_settings()))


@cors_route(bp, "/oauth2/jwks", methods=["GET"])
def jwks():
    return Response(key_store().jwks_json(), mimetype="application/json",
                    headers={"Cache-Control": JWKS_CACHE_CONTROL})


def _authorization_error(error: OAuth2Error) -> Response:
    """RFC 6749 §4.1.2.1: redirect the error to the client only when the
    redirect URI is known to be the client's; otherwise show a page."""
    if not error.redirect_uri:
        return Response(render_template("oauth_error.html", error=error), status=400)
    response = oauth_server().handle_error_response(None, error)
    IssuerInResponse().add_issuer_parameter(oauth_server(), response)
    return response


def _same_request_url(endpoint: str, *, form_only: set[str], **overrides: str) -> str:
    """The URL of `endpoint` with this request's parameters in its query, GET or POST alike, less the
    fields of our own forms: where a page posts back to continue the same protocol request."""
    params = {k: v for k, v in request.values.items() if k not in {"csrf_token", *form_only}}
    params.update(overrides)
    return url_for(endpoint) + "?" + urlencode(params)


def _authorize_url(**overrides: str) -> str:
    return _same_request_url("oauth.authorize", form_only={"decision", PICKED_ORGANIZATION}, **overrides)


def _fresh_login(browser: UserSession) -> bool:
    """Whether this browser session signed in for this very authorization request (see FRESH_LOGIN_KEY).

    Not consumed here: the consent form posts the same request back, and must not
    be sent to sign in again. `authorize` drops it once the request is answered.
    """
    marker = session.get(FRESH_LOGIN_KEY)
    return (isinstance(marker, dict) and marker.get("session") == str(browser.id)
            and marker.get("request") == _authorize_url())


def _needs_login(browser: UserSession | None, prompts: set[str]) -> bool:
    """OIDC Core §3.1.2.1: prompt=login forces re-authentication; max_age bounds its age."""
    if browser is None:
        return True
    max_age = request.values.get("max_age")
    too_old = max_age is not None and max_age.isdigit() and \
        (utcnow() - browser.created_at).total_seconds() > int(max_age)
    if "login" in prompts or too_old:
        return not _fresh_login(browser)
    return False


def _continue_in(organization: Organization, browser: UserSession) -> Response:
    """Post/redirect/get after the organization picker: the choice becomes the request's
    `organization` parameter, so the rest of the flow (consent included) is that of a
    request that named it, and checks it again."""
    target = _authorize_url(organization=str(organization.id))
    if _fresh_login(browser):
        # A sign-in made for this request still counts for its continuation (prompt=login, max_age).
        session[FRESH_LOGIN_KEY] = {**session[FRESH_LOGIN_KEY], "request": target}
    return redirect(target, code=303)


@bp.route("/oauth2/authorize", methods=["GET", "POST"])
def authorize():
    """The authorization endpoint (RFC 6749 §3.1, OIDC Core §3.1.2.1).

    Besides the standard parameters it takes `organization=<id or slug>`: the organization
    the user signs in to the client in; when a sign-in is needed and the organization has
    exactly one enabled connection of its own, the browser goes straight to it. The user
    must be a member; an organization-owned client implies its own and serves no other; a
    client with organization_required asks the user to pick when they belong to several.
    When the organization is not available, the client gets access_denied (RFC 6749
    §4.1.2.1), the same whether or not it exists; a needed choice with prompt=none is
    interaction_required (OIDC Core §3.1.2.6).
    """
    server = oauth_server()
    browser = current_browser_session()
    user = browser.user if browser else None
    try:
        grant = server.get_consent_grant(end_user=user)
    except OAuth2Error as error:
        return _authorization_error(error)
    state = request.values.get("state")
    prompts = set(request.values.get("prompt", "").split())
    if _needs_login(browser, prompts):
        if "none" in prompts:
            return _authorization_error(LoginRequiredError(redirect_uri=grant.redirect_uri, state=state))
        hinted = identities.hinted_connection(db.session, idp_hint=request.values.get("idp_hint"),
                                              organization=request.values.get("organization"))
        if hinted is not None:
            return redirect(url_for("federation.start", provider_id=hinted.id, next=_authorize_url()))
        return redirect(url_for("web.login", next=_authorize_url(), login_hint=request.values.get("login_hint")))
    if current_settings().REQUIRE_VERIFIED_EMAIL and not user.email_verified:
        # Verifying the address is interaction prompt=none forbids (OIDC Core §3.1.2.6).
        if "none" in prompts:
            return _authorization_error(InteractionRequiredError(
                "The user must verify their email address.", redirect_uri=grant.redirect_uri, state=state))
        return Response(render_template("email_verify.html", unverified_email=user.email), status=403)

    client, scopes = grant.client, (grant.request.scope or "").split()
    decision = request.form.get("decision") if request.method == "POST" else None
    if decision is not None:
        csrf.protect()
        if decision != "allow":
            session.pop(FRESH_LOGIN_KEY, None)
            return server.create_authorization_response(grant_user=None, grant=grant)

    picked = request.form.get(PICKED_ORGANIZATION) if request.method == "POST" else None
    if picked is not None:
        csrf.protect()
    try:
        choice = authorization_context.choose_organization(db.session, user=user, client=client,
                                                           requested=request.values.get("organization"),
                                                           picked=picked,
                                                           identity_provider_id=browser.identity_provider_id)
    except errors.PermissionDenied as denied:
        session.pop(FRESH_LOGIN_KEY, None)
        return _authorization_error(AccessDeniedError(denied.message, redirect_uri=grant.redirect_uri, state=state))
    if choice.from_picker:
        return _continue_in(choice.organization, browser)
    if choice.needs_choice:
        if "none" in prompts:
            return _authorization_error(InteractionRequiredError(
                "The user must choose an organization.", redirect_uri=grant.redirect_uri, state=state))
        return render_template("org_picker.html", client=client, user=user, memberships=choice.candidates,
                               field=PICKED_ORGANIZATION, action=_authorize_url())

    # Consent is per organization (OIDC Core §3.1.2.4): what the user allowed in one says nothing of another.
    organization_id = choice.organization.id if choice.organization else None
    if decision == "allow":
        consents.grant_consent(db.session, actor=request_actor(user, browser.id), user=user, client=client,
                               scopes=scopes, organization_id=organization_id)
    elif consents.consent_required(db.session, user=user, client=client, scopes=scopes,
                                   organization_id=organization_id, prompt_consent="consent" in prompts):
        if "none" in prompts:
            return _authorization_error(ConsentRequiredError(redirect_uri=grant.redirect_uri, state=state))
        return render_template("consent.html", client=client, scopes=scopes, user=user,
                               organization=choice.organization, action=_authorize_url())

    grant.auth_context = (browser.created_at, browser.amr or AMR_PASSWORD)
    grant.identity_provider_id = browser.identity_provider_id
    grant.organization_id = organization_id
    session.pop(FRESH_LOGIN_KEY, None)
    response = server.create_authorization_response(grant_user=user, grant=grant)
    db.session.commit()
    return response


@cors_route(bp, "/oauth2/token", methods=["POST"])
def token():
    response = oauth_server().create_token_response(FormBodyRequest(request))
    _commit_what_began()  # failure paths commit too: reuse detection revokes and audits
    return response


def _commit_what_began() -> None:
    """Commit the request's transaction, if anything began one: a client-credentials token for a cached
    client reads and writes nothing, and a commit of nothing still costs a session and its bookkeeping."""
    if db.session.registry.has() and db.session().in_transaction():
        db.session.commit()


@cors_route(bp, "/oauth2/userinfo", methods=["GET", "POST"])
def userinfo():
    return oauth_server().create_endpoint_response("userinfo")


@bp.post("/oauth2/introspect")
def introspect():
    return oauth_server().create_endpoint_response("introspection", FormBodyRequest(request))


@cors_route(bp, "/oauth2/revoke", methods=["POST"])
def revoke():
    response = oauth_server().create_endpoint_response("revocation", FormBodyRequest(request))
    _commit_what_began()
    return response


def _is_access_token(token: str) -> bool:
    """Access tokens are signed with the same keys as ID Tokens; their `typ` tells them apart (RFC 9068 §2.1)."""
    return is_access_token_header(extract_compact(token.encode()).headers())


@bp.route("/oauth2/logout", methods=["GET", "POST"])
def logout():
    """OIDC RP-Initiated Logout 1.0. Without a valid id_token_hint, or with one for another user,
    the user confirms first (a cross-site request must not sign them out silently)."""
    server = oauth_server()
    try:
        end_session_request = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return Response(render_template("oauth_error.html", error=error), status=400)
    claims = end_session_request.id_token_claims
    if claims is not None and (claims.get("iss") != current_settings().ISSUER
                               or _is_access_token(request.values["id_token_hint"])):
        return Response(render_template("oauth_error.html", error=OAuth2Error(
            error="invalid_request", description="id_token_hint is not an ID Token issued by this server.")),
            status=400)
    browser = current_browser_session()
    # §2: an ID Token of someone other than the signed-in user makes the request suspect.
    suspect = claims is not None and browser is not None and claims.get("sub") != str(browser.user_id)
    confirmed = request.method == "POST" and request.form.get("confirm") == "yes"
    if confirmed:
        csrf.protect()
    elif end_session_request.needs_confirmation or suspect:
        # A POSTed logout request's parameters go along too (RP-Initiated Logout 1.0 §2: GET and POST).
        return render_template("logout_confirm.html", action=_same_request_url("oauth.logout", form_only={"confirm"}))

    saml_connection = None
    if browser is not None:
        saml_connection = saml_logout.slo_connection(db.session, browser)
        sessions.logout(db.session, actor=request_actor(browser.user, browser.id), session=browser)
        db.session.commit()
    response = server.create_endpoint_response("end_session", end_session_request)
    if saml_connection is not None:
        try:
            response = _saml_single_logout(saml_connection, browser, then=response.location if response else None)
        except errors.FederationFailed as error:
            # Our session has ended; the IdP's cannot be asked to: the logout goes on here, and the audit
            # trail says why the IdP was not told.
            identities.record_failure(db.session, actor=request_actor(browser.user, browser.id),
                                      provider=saml_connection, reason=error.reason)
            db.session.commit()
    if response is None:
        response = Response(render_template("logged_out.html"))
    clear_session_cookie(response)
    return response


def _saml_single_logout(provider: IdentityProvider, browser: UserSession, *, then: str | None) -> Response:
    """Our session signed in through a SAML connection with an SLO URL has ended; the IdP is asked to end its
    own with a signed LogoutRequest (SAML Profiles §4.4.3.1). Its LogoutResponse comes to /saml/<id>/sls, which
    then goes on to `then` (the relying party's post_logout_redirect_uri), kept here under the RelayState."""
    assert browser.saml_name_id is not None  # as saml_logout.slo_connection found
    relay_state = new_token()
    connection = SAMLConnection.for_provider(provider, our_issuer=current_settings().ISSUER, cipher=field_cipher())
    message = connection.logout_request(name_id=browser.saml_name_id, name_id_format=browser.saml_name_id_format,
                                        session_index=browser.saml_session_index, relay_state=relay_state)
    identities.remember_saml_request(db.session, provider=provider, relay_state=relay_state,
                                     request_id=message.message_id, next_url=then)
    db.session.commit()
    return redirect(message.url)
