"""/api/v1/organizations/<org_id>/clients: an organization's admins manage its OAuth clients.

The same payloads, rules and responses as /api/v1/clients, minus first_party. Each view
is one call to services.organization_clients, which checks the caller's permission again
and scopes every lookup to the organization in the path, so another organization's
client and a platform client are 404 here.
"""

from __future__ import annotations

from flask import Blueprint

from app.api.context import (allow_api_key, current_access, current_actor, load_body, load_query,
                             require_org_permission)
from app.api.envelope import created, no_store, ok, page
from app.api.openapi import documented
from app.extensions import db
from app.schemas.clients import (
    ClientListIn,
    ClientOut,
    IssuedClientOut,
    OrganizationClientIn,
    OrganizationClientUpdateIn,
)
from app.security.api_keys import ORGANIZATIONS_READ, ORGANIZATIONS_WRITE
from app.services import organization_clients

bp = Blueprint("organization_clients", __name__, url_prefix="/api/v1/organizations/<org_id>/clients")

TAG = "organization clients"


@bp.get("")
@documented(summary="List the organization's OAuth clients", tag=TAG, query=ClientListIn, response=ClientOut,
            many=True, paginated=True, errors=(403, 404))
@require_org_permission("clients:read")
@allow_api_key(ORGANIZATIONS_READ)
def list_clients(org_id: str):
    query = load_query(ClientListIn())
    items, total = organization_clients.list_organization_clients(db.session, access=current_access(),
                                                                  page=query["page"], per_page=query["per_page"])
    return page(ClientOut(many=True).dump(items), total=total, page=query["page"], per_page=query["per_page"])


@bp.post("")
@documented(summary="Register an OAuth client of the organization; a confidential client's secret is in this "
                    "response only", tag=TAG, body=OrganizationClientIn, response=IssuedClientOut, status=201,
            errors=(403, 404),
            description="As POST /api/v1/clients, except that first_party is not accepted: only platform "
                        "administrators let a client skip consent.")
@require_org_permission("clients:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def create_client(org_id: str):
    data = load_body(OrganizationClientIn())
    issued = organization_clients.create_organization_client(db.session, actor=current_actor(),
                                                             access=current_access(), **data)
    db.session.commit()
    return no_store(created(IssuedClientOut().dump(issued),
                            message="Client created. Store the secret now: it is not shown again."))


@bp.get("/<client_id>")
@documented(summary="One of the organization's OAuth clients (never its secret)", tag=TAG, response=ClientOut,
            errors=(403, 404))
@require_org_permission("clients:read")
@allow_api_key(ORGANIZATIONS_READ)
def get_client(org_id: str, client_id: str):
    client = organization_clients.get_organization_client(db.session, access=current_access(), client_id=client_id)
    return ok(ClientOut().dump(client))


@bp.patch("/<client_id>")
@documented(summary="Change some of the organization's client's settings", tag=TAG,
            body=OrganizationClientUpdateIn, response=ClientOut, errors=(403, 404))
@require_org_permission("clients:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def update_client(org_id: str, client_id: str):
    data = load_body(OrganizationClientUpdateIn())
    client = organization_clients.update_organization_client(db.session, actor=current_actor(),
                                                             access=current_access(), client_id=client_id, **data)
    db.session.commit()
    return ok(ClientOut().dump(client), message="Client updated.")


@bp.delete("/<client_id>")
@documented(summary="Delete the organization's client with its codes, refresh tokens and consents", tag=TAG,
            errors=(403, 404))
@require_org_permission("clients:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def delete_client(org_id: str, client_id: str):
    organization_clients.delete_organization_client(db.session, actor=current_actor(), access=current_access(),
                                                    client_id=client_id)
    db.session.commit()
    return ok(message="Client deleted.")


@bp.post("/<client_id>/secret")
@documented(summary="Rotate the organization's confidential client's secret; the old one stops working at once",
            tag=TAG, response=IssuedClientOut, errors=(403, 404, 409),
            description="409 for public and private_key_jwt clients, which have no secret.")
@require_org_permission("clients:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def rotate_client_secret(org_id: str, client_id: str):
    issued = organization_clients.rotate_organization_client_secret(db.session, actor=current_actor(),
                                                                    access=current_access(), client_id=client_id)
    db.session.commit()
    return no_store(ok(IssuedClientOut().dump(issued), message="Secret rotated. Store it now: it is not shown again."))
