"""/api/v1/clients: platform administrators register and manage OAuth clients."""

from __future__ import annotations

from flask import Blueprint

from app.api.context import current_actor, load_body, load_query, require_platform_admin
from app.api.envelope import created, no_store, ok, page
from app.api.openapi import documented
from app.extensions import db
from app.schemas.clients import ClientIn, ClientListIn, ClientOut, ClientUpdateIn, IssuedClientOut
from app.services import clients

bp = Blueprint("clients", __name__, url_prefix="/api/v1/clients")


@bp.get("")
@documented(summary="List OAuth clients", tag="clients", query=ClientListIn, response=ClientOut, many=True,
            paginated=True, errors=(403,))
@require_platform_admin
def list_clients():
    query = load_query(ClientListIn())
    items, total = clients.list_all_clients(db.session, page=query["page"], per_page=query["per_page"])
    return page(ClientOut(many=True).dump(items), total=total, page=query["page"], per_page=query["per_page"])


@bp.post("")
@documented(summary="Register an OAuth client; a confidential client's secret is in this response only",
            tag="clients", body=ClientIn, response=IssuedClientOut, status=201, errors=(403,),
            description="Redirect URIs are matched exactly: absolute, https (http only on loopback) or a "
                        "private-use reverse-DNS scheme, no fragment, no wildcard.")
@require_platform_admin
def create_client():
    data = load_body(ClientIn())
    issued = clients.create_client(db.session, actor=current_actor(), **data)
    db.session.commit()
    return no_store(created(IssuedClientOut().dump(issued),
                            message="Client created. Store the secret now: it is not shown again."))


@bp.get("/<client_id>")
@documented(summary="One OAuth client (never its secret)", tag="clients", response=ClientOut, errors=(403, 404))
@require_platform_admin
def get_client(client_id: str):
    return ok(ClientOut().dump(clients.require_client(db.session, client_id)))


@bp.patch("/<client_id>")
@documented(summary="Change some of a client's settings", tag="clients", body=ClientUpdateIn, response=ClientOut,
            errors=(403, 404))
@require_platform_admin
def update_client(client_id: str):
    data = load_body(ClientUpdateIn())
    client = clients.update_client(db.session, actor=current_actor(),
                                   client=clients.require_client(db.session, client_id), **data)
    db.session.commit()
    return ok(ClientOut().dump(client), message="Client updated.")


@bp.delete("/<client_id>")
@documented(summary="Delete a client with its codes, refresh tokens and consents", tag="clients",
            errors=(403, 404))
@require_platform_admin
def delete_client(client_id: str):
    clients.delete_client(db.session, actor=current_actor(), client=clients.require_client(db.session, client_id))
    db.session.commit()
    return ok(message="Client deleted.")


@bp.post("/<client_id>/secret")
@documented(summary="Rotate a confidential client's secret; the old one stops working at once", tag="clients",
            response=IssuedClientOut, errors=(403, 404, 409),
            description="409 for public and private_key_jwt clients, which have no secret.")
@require_platform_admin
def rotate_client_secret(client_id: str):
    issued = clients.rotate_client_secret(db.session, actor=current_actor(),
                                          client=clients.require_client(db.session, client_id))
    db.session.commit()
    return no_store(ok(IssuedClientOut().dump(issued), message="Secret rotated. Store it now: it is not shown again."))
