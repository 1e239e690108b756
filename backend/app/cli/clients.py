"""`flask clients ...`: register and list OAuth clients from the command line.

Input goes through the same schema as POST /api/v1/clients, so the CLI accepts
exactly what the API accepts. `--organization` (an id or a slug) makes the client
that organization's, as POST /api/v1/organizations/<org_id>/clients does.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import click
from flask.cli import AppGroup
from marshmallow import ValidationError

from app.cli import cli_actor, failure
from app.errors import AppError
from app.extensions import db
from app.models import Organization, TokenEndpointAuthMethod
from app.schemas.clients import ClientIn, ClientOut, IssuedClientOut
from app.services import clients, organizations

cli = AppGroup("clients", help="Manage OAuth clients.")

_PAGE_SIZE = 100


def _split(values: tuple[str, ...], separators: str) -> list[str]:
    """Repeated option values, each of which may hold several items."""
    items: list[str] = []
    for value in values:
        for sep in separators[1:]:
            value = value.replace(sep, separators[0])
        items.extend(item for item in value.split(separators[0]) if item)
    return items


def _organization(id_or_slug: str) -> Organization:
    organization = organizations.find_organization(db.session, id_or_slug)
    if organization is None:
        raise click.ClickException(f"--organization: no organization has the id or slug {id_or_slug!r}.")
    return organization


@cli.command("create")
@click.option("--name", required=True, help="Shown to users on the consent page.")
@click.option("--public", "public", is_flag=True, help="A client that cannot keep a secret: SPA, mobile, CLI.")
@click.option("--confidential", "confidential", is_flag=True, help="A server-side client with a secret or keys.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Repeat for several; matched exactly.")
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True, help="Repeat for several.")
@click.option("--grant-types", required=True, multiple=True,
              help="Comma-separated: authorization_code,refresh_token,client_credentials.")
@click.option("--scopes", required=True, multiple=True,
              help='Space-separated, e.g. "openid profile email offline_access"; may be repeated.')
@click.option("--first-party", is_flag=True, help="Skip the consent page for this client.")
@click.option("--token-endpoint-auth-method", type=click.Choice([m.value for m in TokenEndpointAuthMethod]),
              help="Default: none (public) or client_secret_basic (confidential).")
@click.option("--jwks", "jwks_file", type=click.File("r"),
              help="A JWK Set file of public keys, for private_key_jwt ('-' reads stdin).")
@click.option("--id-token-signed-response-alg", type=click.Choice(["RS256", "ES256"]))
@click.option("--access-token-lifetime", type=int, help="Seconds; default: the server's.")
@click.option("--refresh-token-lifetime", type=int, help="Seconds; default: the server's.")
@click.option("--organization", "organization_ref", metavar="ID_OR_SLUG",
              help="The organization that owns the client; default: a platform client.")
@click.option("--organization-required", is_flag=True,
              help="Every authorization must happen in an organization (the user picks one if none is named).")
def create(name: str, public: bool, confidential: bool, redirect_uris: tuple[str, ...],
           post_logout_redirect_uris: tuple[str, ...], grant_types: tuple[str, ...], scopes: tuple[str, ...],
           first_party: bool, token_endpoint_auth_method: str | None, jwks_file: Any,
           id_token_signed_response_alg: str | None, access_token_lifetime: int | None,
           refresh_token_lifetime: int | None, organization_ref: str | None, organization_required: bool) -> None:
    """Register a client and print it as JSON, with its secret (shown only this once)."""
    if public == confidential:
        raise click.UsageError("Choose exactly one of --public and --confidential.")
    organization_id = _organization(organization_ref).id if organization_ref is not None else None
    payload: dict[str, Any] = {
        "name": name, "client_type": "public" if public else "confidential",
        "redirect_uris": list(redirect_uris), "post_logout_redirect_uris": list(post_logout_redirect_uris),
        "grant_types": _split(grant_types, ", "), "scopes": _split(scopes, " ,"), "first_party": first_party,
        "organization_required": organization_required,
    }
    optional = {"token_endpoint_auth_method": token_endpoint_auth_method,
                "id_token_signed_response_alg": id_token_signed_response_alg,
                "access_token_lifetime": access_token_lifetime, "refresh_token_lifetime": refresh_token_lifetime}
    payload.update({key: value for key, value in optional.items() if value is not None})
    if jwks_file is not None:
        try:
            payload["jwks"] = json.load(jwks_file)
        except json.JSONDecodeError as err:
            raise click.ClickException(f"--jwks: not valid JSON ({err}).") from None
    try:
        data = ClientIn().load(payload)
        issued = clients.create_client(db.session, actor=cli_actor(),
                                       organization_id=organization_id, **data)
    except ValidationError as err:
        raise failure("Invalid client:", err.messages) from None
    except AppError as err:
        raise failure(err.message, err.details) from None
    db.session.commit()
    click.echo(json.dumps(IssuedClientOut().dump(issued), indent=2))


@cli.command("list")
@click.option("--organization", "organization_ref", metavar="ID_OR_SLUG", help="Only this organization's clients.")
def list_(organization_ref: str | None) -> None:
    """Print every client as a JSON array (never secrets); organization_id is null for platform clients."""
    if organization_ref is None:
        list_page = clients.list_all_clients
    else:
        list_page = functools.partial(clients.list_clients, organization_id=_organization(organization_ref).id)
    everything, number = [], 1
    while True:
        batch, total = list_page(db.session, page=number, per_page=_PAGE_SIZE)
        everything.extend(ClientOut(many=True).dump(batch))
        if not batch or len(everything) >= total:
            break
        number += 1
    click.echo(json.dumps(everything, indent=2))
