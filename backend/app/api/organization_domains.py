"""/api/v1/organizations/<org_id>/domains: an organization's admins claim its email domains, prove them
with a DNS TXT record, route them to a connection and enforce single sign-on.

Each view is one call to services.domains, which checks connections:read or connections:write again and
scopes every lookup to the organization in the path: another organization's domain is 404 here.
"""

from __future__ import annotations

import uuid

from flask import Blueprint

from app.api.context import (allow_api_key, current_access, current_actor, load_body, load_query,
                             require_org_permission)
from app.api.envelope import created, ok, page
from app.api.openapi import documented
from app.errors import AppError
from app.extensions import db, dns_resolver
from app.schemas.domains import DomainIn, DomainListIn, DomainOut, DomainUpdateIn
from app.security.api_keys import ORGANIZATIONS_READ, ORGANIZATIONS_WRITE
from app.services import domains

bp = Blueprint("organization_domains", __name__, url_prefix="/api/v1/organizations/<org_id>/domains")

TAG = "organization domains"


@bp.get("")
@documented(summary="List the organization's domains", tag=TAG, query=DomainListIn, response=DomainOut, many=True,
            paginated=True, errors=(403, 404))
@require_org_permission("connections:read")
@allow_api_key(ORGANIZATIONS_READ)
def list_domains(org_id: str):
    query = load_query(DomainListIn())
    items, total = domains.list_domains(db.session, access=current_access(), page=query["page"],
                                        per_page=query["per_page"])
    return page(DomainOut(many=True).dump(items), total=total, page=query["page"], per_page=query["per_page"])


@bp.post("")
@documented(summary="Claim a domain; publish its verification TXT record, then verify it", tag=TAG, body=DomainIn,
            response=DomainOut, status=201, errors=(403, 404, 409),
            description="409 when the organization claimed the domain already; 422 for a public mail "
                        "provider's domain.")
@require_org_permission("connections:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def add_domain(org_id: str):
    data = load_body(DomainIn())
    domain = domains.add_domain(db.session, actor=current_actor(), access=current_access(), domain=data["domain"])
    db.session.commit()
    return created(DomainOut().dump(domain), message="Domain added; publish its TXT record, then verify it.")


@bp.get("/<uuid:domain_id>")
@documented(summary="One of the organization's domains", tag=TAG, response=DomainOut, errors=(403, 404))
@require_org_permission("connections:read")
@allow_api_key(ORGANIZATIONS_READ)
def get_domain(org_id: str, domain_id: uuid.UUID):
    return ok(DomainOut().dump(domains.get_domain(db.session, access=current_access(), domain_id=domain_id)))


@bp.patch("/<uuid:domain_id>")
@documented(summary="Route the domain to a connection, turn home-realm discovery or enforced SSO on or off", tag=TAG,
            body=DomainUpdateIn, response=DomainOut, errors=(403, 404, 409),
            description="identity_provider_id must be one of the organization's connections (422). enforce_sso "
                        "needs a verified domain routed to an enabled connection (409 with the reason).")
@require_org_permission("connections:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def update_domain(org_id: str, domain_id: uuid.UUID):
    data = load_body(DomainUpdateIn())
    domain = domains.update_domain(db.session, actor=current_actor(), access=current_access(), domain_id=domain_id,
                                   **data)
    db.session.commit()
    return ok(DomainOut().dump(domain), message="Domain updated.")


@bp.post("/<uuid:domain_id>/verify")
@documented(summary="Verify the domain: look up its TXT record over DNS", tag=TAG, response=DomainOut,
            errors=(403, 404, 409),
            description="200 with the domain when a TXT record at verification.name holds verification.value "
                        "(or the domain is verified already); 409 with the reason otherwise: no record, another "
                        "value, DNS did not answer, or another organization verified the domain.")
@require_org_permission("connections:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def verify_domain(org_id: str, domain_id: uuid.UUID):
    try:
        domain = domains.verify_domain(db.session, actor=current_actor(), access=current_access(),
                                       domain_id=domain_id, resolver=dns_resolver())
    except AppError:
        db.session.commit()  # the failure's audit event is kept, then reported
        raise
    db.session.commit()
    return ok(DomainOut().dump(domain), message="Domain verified.")


@bp.delete("/<uuid:domain_id>")
@documented(summary="Give the domain up (its routing and enforced SSO end)", tag=TAG, errors=(403, 404))
@require_org_permission("connections:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def delete_domain(org_id: str, domain_id: uuid.UUID):
    domains.delete_domain(db.session, actor=current_actor(), access=current_access(), domain_id=domain_id)
    db.session.commit()
    return ok(message="Domain deleted.")
