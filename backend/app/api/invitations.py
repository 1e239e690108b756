"""/api/v1/organizations/<org_id>/invitations: invite people by email; /api/v1/invitations/accept: join."""

from __future__ import annotations

from flask import Blueprint

from app.api.context import (allow_api_key, current_access, current_actor, load_body, load_query, optional_session,
                             require_org_permission, sends_bearer_token)
from app.api.envelope import created, ok, page
from app.api.openapi import documented
from app.extensions import current_settings, db, limiter
from app.schemas.invitations import (AcceptedInvitationOut, AcceptInvitationIn, InvitationIn, InvitationListIn,
                                     InvitationOut)
from app.security.api_keys import ORGANIZATIONS_READ, ORGANIZATIONS_WRITE
from app.services import invitations

bp = Blueprint("invitations", __name__, url_prefix="/api/v1")


@bp.post("/organizations/<org_id>/invitations")
@documented(summary="Invite someone by email; the link goes by email only, never in a response",
            tag="invitations", body=InvitationIn, response=InvitationOut, status=201, errors=(403, 404, 409),
            description="The role must be within the caller's reach (admins cannot invite owners). 409 when the "
                        "email belongs to a member or already has a pending invitation. The email is sent once "
                        "the invitation is stored; it expires after the organization's invitation_ttl_hours.")
@require_org_permission("members:invite")
@allow_api_key(ORGANIZATIONS_WRITE)
def create_invitation(org_id: str):
    data = load_body(InvitationIn())
    details = invitations.invite_member(db.session, actor=current_actor(), access=current_access(),
                                        issuer=current_settings().ISSUER, **data)
    db.session.commit()
    return created(InvitationOut().dump(details), message="Invitation created; the link is on its way by email.")


@bp.get("/organizations/<org_id>/invitations")
@documented(summary="List the organization's invitations, newest first", tag="invitations", query=InvitationListIn,
            response=InvitationOut, many=True, paginated=True, errors=(403, 404))
@require_org_permission("members:invite")
@allow_api_key(ORGANIZATIONS_READ)
def list_invitations(org_id: str):
    query = load_query(InvitationListIn())
    items, total = invitations.list_invitations(db.session, organization_id=current_access().organization.id,
                                                **query)
    return page(InvitationOut(many=True).dump(items), total=total, page=query["page"], per_page=query["per_page"])


@bp.delete("/organizations/<org_id>/invitations/<invitation_id>")
@documented(summary="Revoke an invitation; its link stops working", tag="invitations", response=InvitationOut,
            errors=(403, 404, 409), description="409 once accepted. Revoking a revoked invitation changes nothing.")
@require_org_permission("members:invite")
@allow_api_key(ORGANIZATIONS_WRITE)
def revoke_invitation(org_id: str, invitation_id: str):
    details = invitations.revoke_invitation(db.session, actor=current_actor(), access=current_access(),
                                            invitation_id=invitation_id)
    db.session.commit()
    return ok(InvitationOut().dump(details), message="Invitation revoked.")


@bp.post("/invitations/accept")
@documented(summary="Accept an invitation: signed in, or by creating the invited account", tag="invitations",
            body=AcceptInvitationIn, response=AcceptedInvitationOut, errors=(401, 403, 404, 409, 429),
            description="With a session token (Authorization: Bearer), send only the token; the signed-in email "
                        "must be the invited one (403 otherwise) and becomes verified. Without a session, send "
                        "token, name and password to create the account for the invited email (409 if it exists: "
                        "sign in first); rate-limited like registration. 404 for an unknown token; 409 with "
                        "error.details.token saying expired, revoked or already accepted.")
# Anonymous calls create accounts: they share a per-IP budget with the invitation page's registration form.
@limiter.shared_limit(lambda: current_settings().RATELIMIT_REGISTER, scope="invitation-register",
                      exempt_when=sends_bearer_token)
@optional_session
def accept_invitation():
    data = load_body(AcceptInvitationIn())
    actor = current_actor()
    try:
        membership = invitations.accept_or_register(db.session, actor=actor, user=actor.user,
                                                    bcrypt_rounds=current_settings().BCRYPT_ROUNDS, **data)
    except invitations.AuditedRefusal:
        db.session.commit()  # keep the failure audit event, if one was written (before anything else)
        raise
    db.session.commit()
    return ok(AcceptedInvitationOut().dump(membership), message="Invitation accepted.")
