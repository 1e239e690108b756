"""/api/v1/organizations/<org_id>/clients: an organization's admins manage its OAuth clients.

The same payloads, rules and responses as /api/v1/clients, minus first_party; every
lookup is scoped to the organization in the path, so another organization's client
and a platform client are 404 here.
"""

from __future__ import annotations

from flask import Blueprint

from app.api.context import current_access, current_actor, load_body, load_query, require_org_permission
from app.api.envelope import created, ok, page
from app.api.openapi import documented
from app.extensions import db
from app.models import OAuthClient
from app.schemas.clients import (
    ClientListIn,
    ClientOut,
    IssuedClientOut,
    OrganizationClientIn,
    OrganizationClientUpdateIn,
)
from app.services import clients

bp = Blueprint("organization_clients", __name__, url_prefix="/api/v1/organizations/<org_id>/clients")

TAG = "organization clients"


def _client(client_id: str) -> OAuthClient:
    return clients.require_organization_client(db.session, organization_id=current_access().organization.id,
                                               client_id=client_id)


@bp.get("")
@documented(summary="List the organization's OAuth clients", tag=TAG, query=ClientListIn, response=ClientOut,
            many=True, paginated=True, errors=(403, 404))
@require_org_permission("clients:read")
def list_clients(org_id: str):
    query = load_query(ClientListIn())
    items, total = clients.list_clients(db.session, organization_id=current_access().organization.id, **query)
    return page(ClientOut(many=True).dump(items), total=total, **query)


@bp.post("")
@documented(summary="Register an OAuth client of the organization; a confidential client's secret is in this "
                    "response only", tag=TAG, body=OrganizationClientIn, response=IssuedClientOut, status=201,
            errors=(403, 404),
            description="As POST /api/v1/clients, except that first_party is not accepted: only platform "
                        "administrators let a client skip consent.")
@require_org_permission("clients:write")
def create_client(org_id: str):
    data = load_body(OrganizationClientIn())
    issued = clients.create_client(db.session, actor=current_actor(),
                                   organization_id=current_access().organization.id, **data)
    db.session.commit()
    return created(IssuedClientOut().dump(issued),
                   message="Client created. Store the secret now: it is not shown again.")


@bp.get("/<client_id>")
@documented(summary="One of the organization's OAuth clients (never its secret)", tag=TAG, response=ClientOut,
            errors=(403, 404))
@require_org_permission("clients:read")
def get_client(org_id: str, client_id: str):
    return ok(ClientOut().dump(_client(client_id)))


@bp.patch("/<client_id>")
@documented(summary="Change some of the organization's client's settings", tag=TAG,
            body=OrganizationClientUpdateIn, response=ClientOut, errors=(403, 404))
@require_org_permission("clients:write")
def update_client(org_id: str, client_id: str):
    data = load_body(OrganizationClientUpdateIn())
    client = clients.update_client(db.session, actor=current_actor(), client=_client(client_id), **data)
    db.session.commit()
    return ok(ClientOut().dump(client), message="Client updated.")


@bp.delete("/<client_id>")
@documented(summary="Delete the organization's client with its codes, refresh tokens and consents", tag=TAG,
            errors=(403, 404))
@require_org_permission("clients:write")
def delete_client(org_id: str, client_id: str):
    clients.delete_client(db.session, actor=current_actor(), client=_client(client_id))
    db.session.commit()
    return ok(message="Client deleted.")


@bp.post("/<client_id>/secret")
@documented(summary="Rotate the organization's confidential client's secret; the old one stops working at once",
            tag=TAG, response=IssuedClientOut, errors=(403, 404, 409),
            description="409 for public and private_key_jwt clients, which have no secret.")
@require_org_permission("clients:write")
def rotate_client_secret(org_id: str, client_id: str):
    issued = clients.rotate_client_secret(db.session, actor=current_actor(), client=_client(client_id))
    db.session.commit()
    return ok(IssuedClientOut().dump(issued), message="Secret rotated. Store it now: it is not shown again.")
