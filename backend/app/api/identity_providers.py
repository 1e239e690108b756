"""/api/v1/identity-providers: platform administrators register upstream identity providers."""

from __future__ import annotations

import uuid

from flask import Blueprint

from app.api.context import current_actor, load_body, load_query, require_platform_admin
from app.api.envelope import created, ok, page
from app.api.openapi import documented
from app.extensions import current_settings, db, field_cipher, upstream_fetcher
from app.federation.discovery import UpstreamChecks
from app.schemas.identity_providers import (IdentityProviderIn, IdentityProviderListIn, IdentityProviderOut,
                                            IdentityProviderUpdateIn)
from app.services import identity_providers

bp = Blueprint("identity_providers", __name__, url_prefix="/api/v1/identity-providers")

KINDS_DESCRIPTION = (
    "Kind-specific fields: oidc issuer (its discovery document must name it exactly; fetched on creation "
    "and when it changes) and discovery_url; microsoft tenant, allowed_tenants, allow_any_tenant, authority; "
    "github base_url; google hosted_domain; saml idp_entity_id, idp_sso_url, idp_sso_binding, "
    "idp_certificates, idp_slo_url — or instead of those, the IdP's metadata as idp_metadata_xml or "
    "idp_metadata_url (fetched through the SSRF guard; 422 when it is not metadata, has no IdP, no SSO "
    "service or no signing certificate, or when both or one of those fields are also given) — and "
    "attribute_mapping (its subject key: a stable attribute taken as the subject instead of the NameID), "
    "name_id_format, default_role, group_role_map, jit_membership, allow_idp_initiated "
    "(no client id, secret or scopes; the response adds sp_entity_id, metadata_url, acs_url, sls_url, "
    "sp_certificate). A field of another kind is 422. The client secret is never "
    "returned; register callback_url as the redirect URI at the provider.")


ENFORCING_DESCRIPTION = (" 409 when a domain enforces single sign-on through the connection (enforce_sso) and it "
                         "would be disabled or deleted.")


def provider_out(**kwargs) -> IdentityProviderOut:
    return IdentityProviderOut(issuer=current_settings().ISSUER, **kwargs)


def upstream_checks() -> UpstreamChecks:
    return UpstreamChecks(upstream_fetcher())


@bp.get("")
@documented(summary="List identity providers", tag="identity-providers", query=IdentityProviderListIn,
            response=IdentityProviderOut, many=True, paginated=True, errors=(403,))
@require_platform_admin
def list_providers():
    query = load_query(IdentityProviderListIn())
    items, total = identity_providers.list_all_providers(db.session, page=query["page"], per_page=query["per_page"])
    return page(provider_out(many=True).dump(items), total=total, page=query["page"], per_page=query["per_page"])


@bp.post("")
@documented(summary="Register an upstream identity provider", tag="identity-providers", body=IdentityProviderIn,
            response=IdentityProviderOut, status=201, errors=(403,), description=KINDS_DESCRIPTION)
@require_platform_admin
def create_provider():
    data = load_body(IdentityProviderIn())
    provider = identity_providers.create_provider(db.session, actor=current_actor(), cipher=field_cipher(),
                                                  upstream=upstream_checks(), **data)
    db.session.commit()
    return created(provider_out().dump(provider), message="Identity provider created.")


@bp.get("/<uuid:provider_id>")
@documented(summary="One identity provider (never its client secret)", tag="identity-providers",
            response=IdentityProviderOut, errors=(403, 404))
@require_platform_admin
def get_provider(provider_id: uuid.UUID):
    return ok(provider_out().dump(identity_providers.require_provider(db.session, provider_id)))


@bp.patch("/<uuid:provider_id>")
@documented(summary="Change some of an identity provider's settings", tag="identity-providers",
            body=IdentityProviderUpdateIn, response=IdentityProviderOut, errors=(403, 404, 409),
            description=KINDS_DESCRIPTION + ENFORCING_DESCRIPTION)
@require_platform_admin
def update_provider(provider_id: uuid.UUID):
    data = load_body(IdentityProviderUpdateIn())
    provider = identity_providers.update_provider(
        db.session, actor=current_actor(), cipher=field_cipher(), upstream=upstream_checks(),
        provider=identity_providers.require_provider(db.session, provider_id), **data)
    db.session.commit()
    return ok(provider_out().dump(provider), message="Identity provider updated.")


@bp.delete("/<uuid:provider_id>")
@documented(summary="Delete an identity provider and unlink every identity linked through it",
            tag="identity-providers", errors=(403, 404, 409),
            description="Refused with 409 while an account can sign in only through this provider." +
                        ENFORCING_DESCRIPTION)
@require_platform_admin
def delete_provider(provider_id: uuid.UUID):
    identity_providers.delete_provider(db.session, actor=current_actor(),
                                       provider=identity_providers.require_provider(db.session, provider_id))
    db.session.commit()
    return ok(message="Identity provider deleted.")
