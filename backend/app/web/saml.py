"""A SAML connection's service-provider endpoints: its metadata, the Assertion Consumer Service the IdP
posts its Response to (SAML Bindings §3.5, HTTP-POST), and the Single Logout Service its LogoutRequest and
LogoutResponse come to (Bindings §3.4 HTTP-Redirect or §3.5 HTTP-POST; SAML Profiles §4.4). The sign-in starts at
/federation/<id>/start (web.federation), our logout at /oauth2/logout; the checks of the messages are
app.federation.saml's, what they do to accounts services.identities' and services.saml_logout's."""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, redirect, render_template, request

from app import errors
from app.extensions import current_settings, db, saml_replay_cache
from app.models import IdentityProvider, ProviderKind
from app.models.base import utcnow
from app.request_context import request_actor
from app.security.browser_session import clear_session_cookie, current_browser_session
from app.services import identities, saml_logout, saml_replay
from app.web.federation import remember_pending_link, saml_connection, to_saml_idp
from app.web.pages import login_page, safe_next, signed_in_response

# static/: the script that submits an HTTP-POST binding form (web.federation.to_saml_idp).
bp = Blueprint("saml", __name__, static_folder="static", static_url_path="/saml/static")


def _enabled_connection(provider_id: str) -> IdentityProvider | None:
    provider = identities.enabled_provider(db.session, provider_id)
    return provider if provider is not None and provider.kind == ProviderKind.SAML else None


def _failed(provider: IdentityProvider, error: errors.FederationFailed, next_url: str | None) -> Response:
    db.session.rollback()
    identities.record_failure(db.session, actor=request_actor(), provider=provider, reason=error.reason)
    db.session.commit()
    return login_page(next_url, error=error.message, status=400)


@bp.get("/saml/<provider_id>/metadata")
def metadata(provider_id: str):
    provider = _enabled_connection(provider_id)
    if provider is None:
        return Response("Not found.", status=404, mimetype="text/plain")
    try:
        connection = saml_connection(provider)
    except errors.FederationFailed as error:  # its key does not decrypt: it can sign nothing, so offer nothing
        return Response(error.message, status=503, mimetype="text/plain")
    return Response(connection.metadata_xml(), mimetype="application/samlmetadata+xml")


@bp.post("/saml/<provider_id>/acs")
def acs(provider_id: str):
    provider = _enabled_connection(provider_id)
    if provider is None:
        return login_page(None, error="This sign-in option is not available.", status=404)
    relay_state = request.form.get("RelayState")
    pending = None
    try:
        pending = identities.answered_saml_request(db.session, provider=provider, relay_state=relay_state)
        db.session.commit()  # the request is spent whatever the response turns out to be
        now = utcnow()
        assertion = saml_connection(provider).finish(request.form.get("SAMLResponse", ""),
                                                     request_id=pending.request_id if pending else None, now=now)
        saml_replay.accept_assertion_once(saml_replay_cache(), provider_id=provider.id,
                                          assertion_id=assertion.assertion_id, expires_at=assertion.expires_at,
                                          now=now)
        outcome = identities.complete_sign_in(db.session, actor=request_actor(), provider=provider,
                                              identity=replace(assertion.identity, groups=assertion.groups),
                                              settings=current_settings(), now=now)
    except errors.FederationFailed as error:
        return _failed(provider, error, safe_next(pending.next_url) if pending else None)
    if outcome.issued is not None:
        saml_logout.remember_saml_subject(outcome.issued.session, name_id=assertion.name_id,
                                          name_id_format=assertion.name_id_format,
                                          session_index=assertion.session_index)
    db.session.commit()
    # An unsolicited response lands on the fixed signed-in page: never a URL it carries.
    next_url = safe_next(pending.next_url) if pending else None
    if outcome.pending_link is not None:
        return remember_pending_link(outcome.pending_link, next_url)
    assert outcome.issued is not None
    return signed_in_response(outcome.issued, next_url)


def _logout_failed(provider: IdentityProvider, error: errors.FederationFailed, *, signed_out: bool) -> Response:
    """`signed_out`: our own session had ended before (our logout), else nothing ended (the IdP's request)."""
    db.session.rollback()
    identities.record_failure(db.session, actor=request_actor(), provider=provider, reason=error.reason)
    db.session.commit()
    return Response(render_template("logged_out.html", error=error.message, not_signed_out=not signed_out),
                    status=400)


@bp.route("/saml/<provider_id>/sls", methods=["GET", "POST"])
def sls(provider_id: str):
    """The Single Logout Service (SAML Profiles §4.4.4), HTTP-Redirect binding (Bindings §3.4: the message in
    the query, signed over it) or HTTP-POST (§3.5: in a form, signed inside the XML). A LogoutRequest of
    the IdP ends the sessions it names and is answered with our signed LogoutResponse; a LogoutResponse to
    our LogoutRequest (sent by /oauth2/logout, whose session already ended) finishes that logout where it
    was going."""
    provider = _enabled_connection(provider_id)
    if provider is None:
        return Response(render_template("logged_out.html", error="This sign-in option is not available.",
                                        not_signed_out=True), status=404)
    # HTTP-Redirect binding: the message in the query, signed over it as it came; HTTP-POST: in the form.
    redirect_binding = "SAMLRequest" in request.args or "SAMLResponse" in request.args
    fields = (request.args if redirect_binding else request.form).to_dict()
    query_string = request.query_string.decode("latin-1") if redirect_binding else None
    try:
        connection = saml_connection(provider)
    except errors.FederationFailed as error:
        # A LogoutResponse answers our own logout, whose session had ended before we asked the IdP.
        return _logout_failed(provider, error, signed_out="SAMLResponse" in fields)
    if "SAMLRequest" in fields:
        try:
            logout = connection.idp_logout_request(fields, query_string=query_string)
        except errors.FederationFailed as error:
            return _logout_failed(provider, error, signed_out=False)
        saml_logout.end_idp_sessions(db.session, actor=request_actor(), provider=provider, name_id=logout.name_id,
                                     session_indexes=logout.session_indexes)
        db.session.commit()
        if provider.kind_settings.idp_slo_url:  # type: ignore[attr-defined]
            response = to_saml_idp(connection.logout_response(in_response_to=logout.request_id,
                                                              relay_state=fields.get("RelayState")))
        else:
            response = Response(render_template("logged_out.html"))
        browser = current_browser_session()
        if browser is None:  # this browser's session, if it was one of them, has ended
            clear_session_cookie(response)
        return response
    if "SAMLResponse" not in fields:
        return _logout_failed(provider, errors.FederationFailed("saml_logout_malformed", "There is no logout "
                                                                "message here."), signed_out=False)
    try:
        pending = identities.consume_saml_request(db.session, provider=provider,
                                                  relay_state=fields.get("RelayState", ""))
        db.session.commit()  # spent whatever the response turns out to be
        connection.check_logout_response(fields, query_string=query_string, request_id=pending.request_id)
    except errors.FederationFailed as error:
        return _logout_failed(provider, error, signed_out=True)
    # Where the relying party's logout request was going (a registered post_logout_redirect_uri), kept
    # server-side under the RelayState: never a URL from the message.
    return redirect(pending.next_url) if pending.next_url else Response(render_template("logged_out.html"))
