"""/api/v1/organizations/<org_id>/audit-events: an organization's audit trail."""

from __future__ import annotations

from flask import Blueprint

from app.api.context import allow_api_key, current_access, load_query, require_org_permission
from app.api.envelope import page
from app.api.openapi import documented
from app.extensions import db
from app.schemas.audit import AuditEventListIn, AuditEventOut
from app.security.api_keys import ORGANIZATIONS_READ
from app.services import audit

bp = Blueprint("organization_audit", __name__, url_prefix="/api/v1/organizations/<org_id>/audit-events")


@bp.get("")
@documented(summary="The organization's audit trail, newest first", tag="organization audit",
            query=AuditEventListIn, response=AuditEventOut, many=True, paginated=True, errors=(403, 404),
            description='Filters: action (exact, or a prefix ending in "." such as "membership."), actor (a user '
                        "id), since and until (ISO 8601 with a timezone, both inclusive; until before since is "
                        "422). Only this organization's events appear, never platform events.")
@require_org_permission("audit:read")
@allow_api_key(ORGANIZATIONS_READ)
def list_events(org_id: str):
    query = load_query(AuditEventListIn())
    items, total = audit.list_events(db.session, organization_id=current_access().organization.id, **query)
    return page(AuditEventOut(many=True).dump(items), total=total, page=query["page"], per_page=query["per_page"])
