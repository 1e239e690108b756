"""`flask providers ...`: upstream identity providers from the command line.

Input goes through the same schema and service as POST /api/v1/identity-providers. The client
secret is read from a hidden prompt (or standard input), never from the command line, where it
would be left in the shell history and the process list. A saml connection has no client id or
secret: its IdP comes from metadata (a URL, or a file) or field by field, certificates from PEM files.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup
from marshmallow import ValidationError

from app.cli import cli_actor, failure
from app.errors import AppError
from app.extensions import current_settings, db, field_cipher, upstream_fetcher
from app.federation.discovery import UpstreamChecks
from app.models import ProviderKind
from app.schemas.identity_providers import IdentityProviderIn, IdentityProviderOut
from app.services import identity_providers

cli = AppGroup("providers", help="Manage upstream identity providers (sign in with Google, GitHub, ...).")

_PAGE_SIZE = 100


def _dump(provider_or_list: Any, many: bool = False) -> str:
    return json.dumps(IdentityProviderOut(issuer=current_settings().ISSUER, many=many).dump(provider_or_list),
                      indent=2)


@cli.command("create")
@click.option("--kind", required=True, type=click.Choice([k.value for k in ProviderKind]))
@click.option("--name", required=True, help="Shown on the sign-in button.")
@click.option("--client-id", help="Our client id registered at the provider (every kind but saml).")
@click.option("--scope", "scopes", multiple=True, help="Space-separated, may be repeated; default per kind.")
@click.option("--disabled", is_flag=True, help="Register it switched off.")
@click.option("--trust-email", is_flag=True, help="Link a proved-verified email to the local account with it.")
@click.option("--no-signup", is_flag=True, help="Do not create accounts on a first sign-in.")
@click.option("--issuer", help="oidc: the issuer (its discovery document is fetched and must name it exactly).")
@click.option("--discovery-url", help="oidc: the discovery document, if not under the issuer.")
@click.option("--tenant", help="microsoft: common, organizations, consumers or a tenant id.")
@click.option("--allowed-tenant", "allowed_tenants", multiple=True, help="microsoft: repeat for each tenant id.")
@click.option("--allow-any-tenant", is_flag=True, help="microsoft common/organizations: any tenant may sign in.")
@click.option("--authority", help="microsoft: default https://login.microsoftonline.com.")
@click.option("--base-url", help="github: default https://github.com.")
@click.option("--hosted-domain", help="google: the Workspace domain whose accounts alone may sign in.")
@click.option("--idp-metadata-url", help="saml: where the IdP's metadata is (fetched through the SSRF guard).")
@click.option("--idp-metadata-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="saml: the IdP's metadata XML, from a file.")
@click.option("--idp-entity-id", help="saml, without metadata: the IdP's entity id.")
@click.option("--idp-sso-url", help="saml, without metadata: the IdP's single sign-on URL.")
@click.option("--idp-sso-binding", type=click.Choice(["HTTP-Redirect", "HTTP-POST"]),
              help="saml, without metadata: how the AuthnRequest goes (default HTTP-Redirect).")
@click.option("--idp-slo-url", help="saml, without metadata: the IdP's single logout URL.")
@click.option("--idp-certificate-file", "idp_certificate_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="saml, without metadata: an IdP signing certificate (PEM file); repeat during a rollover.")
@click.option("--allow-idp-initiated", is_flag=True, help="saml: accept unsolicited (IdP-initiated) responses.")
def create(kind: str, name: str, client_id: str | None, scopes: tuple[str, ...], disabled: bool, trust_email: bool,
           no_signup: bool, allowed_tenants: tuple[str, ...], allow_any_tenant: bool, idp_metadata_file: Path | None,
           idp_certificate_files: tuple[Path, ...], allow_idp_initiated: bool, **kind_options: str | None) -> None:
    """Register a provider and print it as JSON (with the callback URL to register at the provider; for
    saml, our entity id, ACS, SLS and metadata URLs to give the IdP).

    The client secret is asked for (hidden), or read from standard input:
    printf %s "$SECRET" | flask providers create ...
    """
    payload: dict[str, Any] = {"kind": kind, "name": name, "enabled": not disabled, "trust_email": trust_email,
                               "allow_signup": not no_signup}
    if client_id is not None:
        payload["client_id"] = client_id
    if kind != ProviderKind.SAML:  # saml has no client registration, hence no secret
        payload["client_secret"] = click.prompt("Client secret", hide_input=True)
    if idp_metadata_file is not None:
        payload["idp_metadata_xml"] = idp_metadata_file.read_text()
    if idp_certificate_files:
        payload["idp_certificates"] = [path.read_text() for path in idp_certificate_files]
    if allow_idp_initiated:
        payload["allow_idp_initiated"] = True
    if scopes:
        payload["scopes"] = " ".join(scopes).split()
    if allowed_tenants:
        payload["allowed_tenants"] = list(allowed_tenants)
    if allow_any_tenant:
        payload["allow_any_tenant"] = True
    payload.update({field: value for field, value in kind_options.items() if value is not None})
    try:
        provider = identity_providers.create_provider(
            db.session, actor=cli_actor(), cipher=field_cipher(), upstream=UpstreamChecks(upstream_fetcher()),
            **IdentityProviderIn().load(payload))
    except ValidationError as err:
        raise failure("Invalid provider:", err.messages) from None
    except AppError as err:
        raise failure(err.message, err.details) from None
    db.session.commit()
    click.echo(_dump(provider))


@cli.command("list")
def list_() -> None:
    """Print every provider as a JSON array (never client secrets)."""
    everything, number = [], 1
    while True:
        batch, total = identity_providers.list_all_providers(db.session, page=number, per_page=_PAGE_SIZE)
        everything.extend(batch)
        if not batch or len(everything) >= total:
            break
        number += 1
    click.echo(_dump(everything, many=True))


@cli.command("delete")
@click.argument("provider_id", type=click.UUID)
def delete(provider_id: uuid.UUID) -> None:
    """Delete a provider; the identities linked through it are unlinked."""
    try:
        provider = identity_providers.require_provider(db.session, provider_id)
    except AppError as err:
        raise failure(err.message, err.details) from None
    identity_providers.delete_provider(db.session, actor=cli_actor(), provider=provider)
    db.session.commit()
    click.echo(f"deleted identity provider {provider_id} ({provider.name})")
