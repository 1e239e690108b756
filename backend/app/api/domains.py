"""/api/v1/domains: platform administrators' break-glass on organizations' domains."""

from __future__ import annotations

import uuid

from flask import Blueprint

from app.api.context import current_actor, require_platform_admin
from app.api.envelope import ok
from app.api.openapi import documented
from app.errors import AppError
from app.extensions import db
from app.schemas.domains import DomainOut
from app.services import domains

bp = Blueprint("domains", __name__, url_prefix="/api/v1/domains")


@bp.post("/<uuid:domain_id>/mark-verified")
@documented(summary="Mark an organization's domain verified without DNS (platform administrators)",
            tag="organization domains", response=DomainOut, errors=(403, 404, 409),
            description="For an organization that cannot publish the TXT record; audited as domain.verified "
                        "with method manual. 409 when another organization verified the domain.")
@require_platform_admin
def mark_verified(domain_id: uuid.UUID):
    try:
        domain = domains.mark_verified(db.session, actor=current_actor(), domain_id=domain_id)
    except AppError:
        db.session.commit()  # the failure's audit event is kept, then reported
        raise
    db.session.commit()
    return ok(DomainOut().dump(domain), message="Domain marked verified.")
