"""Signing in through an upstream identity provider: /federation/<id>/start sends the browser there,
/federation/<id>/callback brings it back, /federation/link asks for the password of the account an
identity would link to. The rules are services.identities'; the upstream protocol is app.federation's."""

from __future__ import annotations

import uuid
from datetime import datetime

from flask import Blueprint, Response, redirect, render_template, request, session

from app import errors
from app.extensions import csrf, current_settings, db, field_cipher, limiter, upstream_fetcher, upstream_metadata
from app.federation.adapters import Adapter, adapter_for
from app.federation.saml import OutgoingMessage, SAMLConnection
from app.models import IdentityProvider, ProviderKind
from app.models.base import utcnow
from app.request_context import request_actor
from app.security.browser_session import current_browser_session
from app.security.tokens import new_token
from app.services import identities
from app.services.identity_providers import get_provider
from app.web.pages import login_page, safe_next, signed_in_response

bp = Blueprint("federation", __name__)

# This browser's sign-in at an upstream, between start and callback (the Flask session is signed).
PENDING_SIGN_IN_KEY = "federation_sign_in"
# An identity waiting to be linked once the person enters the account's password.
PENDING_LINK_KEY = "federation_link"


def _adapter(provider: IdentityProvider) -> Adapter:
    return adapter_for(provider, our_issuer=current_settings().ISSUER, metadata=upstream_metadata(),
                       fetcher=upstream_fetcher(), cipher=field_cipher())


def saml_connection(provider: IdentityProvider) -> SAMLConnection:
    return SAMLConnection.for_provider(provider, our_issuer=current_settings().ISSUER, cipher=field_cipher())


def to_saml_idp(message: OutgoingMessage) -> Response:
    """The browser on its way to the IdP with `message`: a redirect (HTTP-Redirect binding), or a form it
    POSTs (HTTP-POST binding, SAML Bindings §3.5.3) — submitted by a script from our own origin (the CSP
    allows no inline script), or by the person's click without JavaScript."""
    if message.form is None:
        return redirect(message.url)
    return Response(render_template("saml_post.html", action=message.url, fields=message.form))


def _failed(provider: IdentityProvider | None, error: errors.FederationFailed, next_url: str | None) -> Response:
    """Back to the sign-in page with a plain message; the relying party's request stays pending (`next`)."""
    identities.record_failure(db.session, actor=request_actor(), provider=provider, reason=error.reason)
    db.session.commit()
    return login_page(next_url, error=error.message, status=400)


@bp.get("/federation/<provider_id>/start")
def start(provider_id: str):
    next_url = safe_next(request.args.get("next"))
    provider = identities.enabled_provider(db.session, provider_id)
    if provider is None:
        return login_page(next_url, error="This sign-in option is not available.", status=404)
    if provider.kind == ProviderKind.SAML:
        return _start_saml(provider, next_url)
    try:
        adapter = _adapter(provider)
        pending = identities.start_sign_in(db.session, provider=provider, pkce=adapter.uses_pkce())
        target = adapter.authorization_url(state=pending.state, nonce=pending.nonce,
                                           code_verifier=pending.code_verifier)
    except errors.FederationFailed as error:
        db.session.rollback()
        return _failed(provider, error, next_url)
    session[PENDING_SIGN_IN_KEY] = {"provider": str(provider.id), "state": pending.state, "nonce": pending.nonce,
                                    "verifier": pending.code_verifier, "next": next_url}
    db.session.commit()
    return redirect(target)


def _start_saml(provider: IdentityProvider, next_url: str | None) -> Response:
    """A signed AuthnRequest; the RelayState is a random key to the request kept server-side, never a URL."""
    relay_state = new_token()
    try:
        message = saml_connection(provider).authn_request(relay_state=relay_state)
    except errors.FederationFailed as error:
        return _failed(provider, error, next_url)
    identities.remember_saml_request(db.session, provider=provider, relay_state=relay_state,
                                     request_id=message.message_id, next_url=next_url)
    db.session.commit()
    return to_saml_idp(message)


@bp.get("/federation/<provider_id>/callback")
def callback(provider_id: str):
    # Popped whatever happens: a state is good for one answer.
    pending = session.pop(PENDING_SIGN_IN_KEY, None)
    if not isinstance(pending, dict) or pending.get("provider") != provider_id:
        pending = {}
    next_url = safe_next(pending.get("next"))
    provider = identities.enabled_provider(db.session, provider_id)
    if provider is None:
        return login_page(next_url, error="This sign-in option is not available.", status=404)
    browser = current_browser_session()
    try:
        identities.consume_state(db.session, provider=provider, returned=request.args.get("state"),
                                 expected=pending.get("state"))
        identity = _adapter(provider).finish(request.args, nonce=pending["nonce"], code_verifier=pending["verifier"],
                                             now=utcnow().timestamp())
        outcome = identities.complete_sign_in(db.session, actor=request_actor(), provider=provider, identity=identity,
                                              settings=current_settings(),
                                              previous_session_id=browser.id if browser else None)
    except errors.FederationFailed as error:
        db.session.rollback()
        if error.reason not in ("state_mismatch", "state_expired"):
            # The state was good and is spent: keep it spent.
            identities.consume_state(db.session, provider=provider, returned=request.args.get("state"),
                                     expected=pending.get("state"))
        return _failed(provider, error, next_url)
    db.session.commit()
    if outcome.pending_link is not None:
        return remember_pending_link(outcome.pending_link, next_url)
    assert outcome.issued is not None
    return signed_in_response(outcome.issued, next_url)


def remember_pending_link(link: identities.PendingLink, next_url: str | None) -> Response:
    """On to the page asking for the password of the account the identity would link to."""
    session[PENDING_LINK_KEY] = {
        "provider": str(link.provider_id), "user": str(link.user_id), "subject": link.identity.subject,
        "email": link.identity.email, "email_verified": link.identity.email_verified, "name": link.identity.name,
        "amr": link.identity.amr, "groups": link.identity.groups, "expires_at": link.expires_at.isoformat(),
        "next": next_url}
    return redirect("/federation/link", code=303)


def _pending_link() -> tuple[identities.PendingLink, str | None] | None:
    stored = session.get(PENDING_LINK_KEY)
    if not isinstance(stored, dict):
        return None
    identity = identities.VerifiedIdentity(subject=stored["subject"], email=stored["email"],
                                           email_verified=stored["email_verified"], name=stored["name"],
                                           amr=stored["amr"], groups=stored.get("groups") or [])
    return identities.PendingLink(provider_id=uuid.UUID(stored["provider"]), user_id=uuid.UUID(stored["user"]),
                                  identity=identity, expires_at=datetime.fromisoformat(stored["expires_at"])), \
        safe_next(stored.get("next"))


def _link_page(link: identities.PendingLink, *, error: str | None = None, status: int = 200) -> Response:
    provider = get_provider(db.session, link.provider_id)
    return Response(render_template("federation_link.html", email=link.identity.email,
                                    provider_name=provider.name if provider else "", error=error), status=status)


@bp.get("/federation/link")
def link_form():
    found = _pending_link()
    if found is None:
        return login_page(None, error="There is nothing to link. Please sign in.", status=400)
    return _link_page(found[0])


@bp.post("/federation/link")
@limiter.shared_limit(lambda: current_settings().RATELIMIT_LOGIN, scope="login")
def link():
    csrf.protect()
    found = _pending_link()
    if found is None:
        return login_page(None, error="There is nothing to link. Please sign in.", status=400)
    pending, next_url = found
    browser = current_browser_session()
    try:
        issued = identities.link_with_password(db.session, actor=request_actor(), pending=pending,
                                               password=request.form.get("password", ""), settings=current_settings(),
                                               previous_session_id=browser.id if browser else None)
    except errors.FederationFailed as error:
        session.pop(PENDING_LINK_KEY, None)
        db.session.rollback()
        return _failed(get_provider(db.session, pending.provider_id), error, next_url)
    except errors.AppError as error:
        db.session.commit()  # the failure count, lockout and audit event are kept
        return _link_page(pending, error=error.message, status=error.status)
    session.pop(PENDING_LINK_KEY, None)
    db.session.commit()
    return signed_in_response(issued, next_url)
