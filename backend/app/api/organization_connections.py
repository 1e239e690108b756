"""/api/v1/organizations/<org_id>/identity-providers: an organization's admins manage its own single
sign-on connections (saml, oidc, microsoft with one tenant).

The same payloads and responses as /api/v1/identity-providers. Each view is one call to
services.organization_connections, which checks the caller's permission again and scopes every lookup
to the organization in the path, so another organization's connection and a platform-wide provider are
404 here.
"""

from __future__ import annotations

import uuid

from flask import Blueprint

from app.api.context import (allow_api_key, current_access, current_actor, load_body, load_query,
                             require_org_permission)
from app.api.envelope import created, ok, page
from app.api.identity_providers import ENFORCING_DESCRIPTION, KINDS_DESCRIPTION, provider_out, upstream_checks
from app.api.openapi import documented
from app.extensions import db, field_cipher
from app.schemas.identity_providers import (IdentityProviderIn, IdentityProviderListIn, IdentityProviderOut,
                                            IdentityProviderUpdateIn)
from app.security.api_keys import ORGANIZATIONS_READ, ORGANIZATIONS_WRITE
from app.services import organization_connections

bp = Blueprint("organization_connections", __name__,
               url_prefix="/api/v1/organizations/<org_id>/identity-providers")

TAG = "organization identity providers"
_ORG_KINDS = ("Kinds: saml, oidc, and microsoft with one tenant (its tenant id). default_role and the roles "
              "of group_role_map are the organization's own roles (never owner). " + KINDS_DESCRIPTION)


@bp.get("")
@documented(summary="List the organization's identity-provider connections", tag=TAG, query=IdentityProviderListIn,
            response=IdentityProviderOut, many=True, paginated=True, errors=(403, 404))
@require_org_permission("connections:read")
@allow_api_key(ORGANIZATIONS_READ)
def list_connections(org_id: str):
    query = load_query(IdentityProviderListIn())
    items, total = organization_connections.list_connections(db.session, access=current_access(),
                                                             page=query["page"], per_page=query["per_page"])
    return page(provider_out(many=True).dump(items), total=total, page=query["page"], per_page=query["per_page"])


@bp.post("")
@documented(summary="Connect an identity provider to the organization", tag=TAG, body=IdentityProviderIn,
            response=IdentityProviderOut, status=201, errors=(403, 404), description=_ORG_KINDS)
@require_org_permission("connections:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def create_connection(org_id: str):
    data = load_body(IdentityProviderIn())
    provider = organization_connections.create_connection(db.session, actor=current_actor(), access=current_access(),
                                                          cipher=field_cipher(), upstream=upstream_checks(), **data)
    db.session.commit()
    return created(provider_out().dump(provider), message="Identity provider connected.")


@bp.get("/<uuid:provider_id>")
@documented(summary="One of the organization's connections (never its secrets)", tag=TAG,
            response=IdentityProviderOut, errors=(403, 404))
@require_org_permission("connections:read")
@allow_api_key(ORGANIZATIONS_READ)
def get_connection(org_id: str, provider_id: uuid.UUID):
    return ok(provider_out().dump(organization_connections.get_connection(db.session, access=current_access(),
                                                                  provider_id=provider_id)))


@bp.patch("/<uuid:provider_id>")
@documented(summary="Change some of the organization's connection's settings", tag=TAG,
            body=IdentityProviderUpdateIn, response=IdentityProviderOut, errors=(403, 404, 409),
            description=_ORG_KINDS + ENFORCING_DESCRIPTION)
@require_org_permission("connections:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def update_connection(org_id: str, provider_id: uuid.UUID):
    data = load_body(IdentityProviderUpdateIn())
    provider = organization_connections.update_connection(db.session, actor=current_actor(), access=current_access(),
                                                          cipher=field_cipher(), upstream=upstream_checks(),
                                                          provider_id=provider_id, **data)
    db.session.commit()
    return ok(provider_out().dump(provider), message="Identity provider updated.")


@bp.delete("/<uuid:provider_id>")
@documented(summary="Delete the organization's connection and unlink every identity linked through it", tag=TAG,
            errors=(403, 404, 409),
            description="Refused with 409 while an account can sign in only through it." + ENFORCING_DESCRIPTION)
@require_org_permission("connections:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def delete_connection(org_id: str, provider_id: uuid.UUID):
    organization_connections.delete_connection(db.session, actor=current_actor(), access=current_access(),
                                               provider_id=provider_id)
    db.session.commit()
    return ok(message="Identity provider deleted.")
