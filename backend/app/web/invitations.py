"""The page an invitation email links to: see the offer, then accept it signed in, or register and accept.

The URL carries the invitation token, so these pages, like every page, are
`Cache-Control: no-store` (security/headers.py) and `Referrer-Policy: no-referrer`.
Statuses: 404 for a token that names no invitation, 410 for one that can no longer be
used (expired, revoked or already accepted: the page says which), 403 when signed in
as someone else, 409 for other conflicts, 422 for a rejected registration form.
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for
from marshmallow import ValidationError

from app.errors import AppError, ValidationFailed
from app.extensions import csrf, current_settings, db, limiter
from app.models import UserSession
from app.request_context import request_actor
from app.schemas.invitations import AcceptInvitationIn
from app.security import passwords
from app.security.browser_session import current_browser_session, set_session_cookie
from app.services import invitations

bp = Blueprint("invitation_pages", __name__, template_folder="templates")


def _error_page(err: AppError) -> Response:
    if isinstance(err, invitations.AuditedRefusal):
        db.session.commit()  # keep the failure audit event, if one was written (before anything else)
    status = 410 if isinstance(err, invitations.InvitationUnusable) else err.status
    return Response(render_template("invitation_error.html", message=err.message), status=status)


def _offer_page(token: str, *, browser: UserSession | None, field_errors: dict | None = None, name: str = "",
                status: int = 200) -> Response:
    """The invitation with what this browser can do about it, or the error page for a dead token."""
    try:
        preview = invitations.preview_invitation(db.session, token=token, user=browser.user if browser else None)
    except AppError as err:
        return _error_page(err)
    page_url = url_for(".invitation_page", token=token)
    return Response(render_template(
        "invitation.html", preview=preview, token=token, user=browser.user if browser else None,
        login_url=url_for("web.login_form", next=page_url, login_hint=preview.invitation.email),
        field_errors=field_errors or {}, name=name, password_min_length=passwords.MIN_LENGTH), status=status)


@bp.get(invitations.ACCEPT_PATH)
def invitation_page():
    return _offer_page(request.args.get("token", ""), browser=current_browser_session())


@bp.post(invitations.ACCEPT_PATH)
def accept():
    csrf.protect()
    token = request.form.get("token", "")
    browser = current_browser_session()
    if browser is None:  # signed out in another tab: offer sign-in or registration again
        return redirect(url_for(".invitation_page", token=token))
    try:
        membership = invitations.accept_invitation(db.session, actor=request_actor(browser.user, browser.id),
                                                   user=browser.user, token=token)
    except AppError as err:
        return _error_page(err)
    db.session.commit()
    return render_template("invitation_joined.html", membership=membership)


@bp.post("/invitations/register")
# One per-IP budget with the API's anonymous accept (api/invitations.py), as both create accounts.
@limiter.shared_limit(lambda: current_settings().RATELIMIT_REGISTER, scope="invitation-register")
def register():
    csrf.protect()
    token, name = request.form.get("token", ""), request.form.get("name", "")
    # An empty password is left out, so that the service says it is required.
    fields = {"token": token, "name": name, "password": request.form.get("password") or None}
    previous = current_browser_session()
    try:
        form = AcceptInvitationIn().load({k: v for k, v in fields.items() if v is not None})
        joined = invitations.register_accept_and_sign_in(
            db.session, actor=request_actor(), token=form["token"], name=form.get("name", ""),
            password=form.get("password"), settings=current_settings(),
            previous_session_id=previous.id if previous else None)
    except ValidationError as err:
        return _offer_page(token, browser=previous, field_errors=err.messages, name=name, status=422)
    except ValidationFailed as err:
        return _offer_page(token, browser=previous, field_errors=err.details, name=name, status=422)
    except AppError as err:
        return _error_page(err)
    db.session.commit()
    response = Response(render_template("invitation_joined.html", membership=joined.membership))
    set_session_cookie(response, joined.session.token, joined.session.session)
    return response
