"""A SAML connection's service-provider endpoints: its metadata, and the Assertion Consumer Service the IdP
posts its Response to (SAML Bindings §3.5, HTTP-POST). The sign-in starts at /federation/<id>/start
(web.federation); the checks of the Response are app.federation.saml's, what it does to accounts
services.identities'."""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, request

from app import errors
from app.extensions import current_settings, db
from app.models import IdentityProvider, ProviderKind
from app.models.base import utcnow
from app.request_context import request_actor
from app.services import identities
from app.web.federation import remember_pending_link, saml_connection
from app.web.pages import login_page, safe_next, signed_in_response

bp = Blueprint("saml", __name__)


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
    return Response(saml_connection(provider).metadata_xml(), mimetype="application/samlmetadata+xml")


@bp.post("/saml/<provider_id>/acs")
def acs(provider_id: str):
    provider = _enabled_connection(provider_id)
    if provider is None:
        return login_page(None, error="This sign-in option is not available.", status=404)
    relay_state = request.form.get("RelayState")
    pending = None
    try:
        if relay_state:
            pending = identities.consume_saml_request(db.session, provider=provider, relay_state=relay_state)
            db.session.commit()  # spent whatever the response turns out to be
        elif not provider.kind_settings.allow_idp_initiated:  # type: ignore[attr-defined]
            raise errors.FederationFailed("saml_unsolicited", "Sign in from this site, not from the identity "
                                                              "provider's portal.")
        now = utcnow()
        assertion = saml_connection(provider).finish(request.form.get("SAMLResponse", ""),
                                                     request_id=pending.request_id if pending else None, now=now)
        identities.accept_assertion_once(db.session, provider=provider, assertion_id=assertion.assertion_id,
                                         expires_at=assertion.expires_at, now=now)
        outcome = identities.complete_sign_in(db.session, actor=request_actor(), provider=provider,
                                              identity=replace(assertion.identity, groups=assertion.groups),
                                              settings=current_settings(), now=now)
    except errors.FederationFailed as error:
        return _failed(provider, error, safe_next(pending.next_url) if pending else None)
    db.session.commit()
    # An unsolicited response lands on the fixed signed-in page: never a URL it carries.
    next_url = safe_next(pending.next_url) if pending else None
    if outcome.pending_link is not None:
        return remember_pending_link(outcome.pending_link, next_url)
    assert outcome.issued is not None
    return signed_in_response(outcome.issued, next_url)
