"""Upstream identity providers: registration, per-kind configuration rules, and their client secrets.

Every rule about a provider's settings lives in `_configuration_problems`, run on the complete
resulting configuration on creation and on every update, so an update can never produce a provider
that creation would have refused. Per kind (the exact field names of the API body):
- oidc: `issuer` (its discovery document must name it exactly) and an optional `discovery_url`;
- microsoft: `tenant`, `allowed_tenants` / `allow_any_tenant` (multi-tenant only), `authority`;
- github: `base_url`; google: an optional `hosted_domain`;
- saml: `idp_entity_id`, `idp_sso_url`, `idp_sso_binding` (HTTP-Redirect or HTTP-POST), `idp_certificates`
  (PEM, several for rollover), an optional `idp_slo_url` — or instead of those five, the IdP's metadata as
  `idp_metadata_xml` or `idp_metadata_url` (read once, not stored); `name_id_format`, `allow_idp_initiated`;
  no client id, secret or scopes. Our SP key pair is generated on creation: the certificate in the settings
  (`sp_certificate`, never set by a caller), the private key encrypted.
- an organization's own connection (saml, oidc, microsoft) also takes the membership settings
  (models.federation.MembershipSettings): `attribute_mapping` (saml: email, name, given_name, family_name,
  groups, and `subject`, a stable attribute to take instead of the NameID; oidc and microsoft: groups, the
  ID token claim, default "groups"), `default_role`, `group_role_map` (never owner), `jit_membership`. A
  platform-wide provider has no organization to add people to: oidc and microsoft ones refuse them (a
  platform saml provider keeps them, unused).

URLs go through `UpstreamChecks` (federation.discovery), passed in by the caller: the SSRF guard's
rules for the URL, and for an oidc issuer a real fetch of its discovery document.

Client secrets are stored encrypted (security.crypto.FieldCipher), never returned, never logged,
and never put in audit details (an update lists the changed field names only).
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from app import errors
from app.models import ExternalIdentity, IdentityProvider, ProviderKind, User
from app.models.federation import KIND_SETTINGS, MembershipSettings
from app.security.crypto import FieldCipher, UndecryptableSecret
from app.services import audit, domains
from app.services.actor import Actor
from app.services.pagination import paginate

DEFAULT_SCOPES: dict[ProviderKind, list[str]] = {
    ProviderKind.OIDC: ["openid", "email", "profile"],
    ProviderKind.GOOGLE: ["openid", "email", "profile"],
    ProviderKind.MICROSOFT: ["openid", "email", "profile"],
    # GitHub is OAuth 2.0 without OpenID Connect: the profile, and the addresses with their verified flag.
    ProviderKind.GITHUB: ["read:user", "user:email"],
}
DEFAULT_MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_GITHUB_BASE_URL = "https://github.com"
# Microsoft identity platform v2.0 tenant segments that are not one tenant.
MULTI_TENANT = frozenset({"common", "organizations"})
CONSUMERS_TENANT = "consumers"
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Every kind-specific field, and the kind it belongs to.
SP_CERTIFICATE_LIFETIME = timedelta(days=3650)
# The settings only we set (a saml connection's SP certificate).
GENERATED_FIELDS = frozenset({"sp_certificate"})
KIND_FIELDS: dict[str, frozenset[ProviderKind]] = {
    name: frozenset(kind for kind, settings in KIND_SETTINGS.items() if name in settings.field_names())
    for name in {name for settings in KIND_SETTINGS.values() for name in settings.field_names()} - GENERATED_FIELDS}
MEMBERSHIP_FIELDS = frozenset(MembershipSettings.field_names())
# The attribute_mapping keys of each kind: what a SAML IdP sends as attributes; an OpenID provider's
# email and name are standard claims, its groups are not.
ATTRIBUTE_KEYS: dict[ProviderKind, frozenset[str]] = {
    ProviderKind.SAML: frozenset({"email", "name", "given_name", "family_name", "groups", "subject"}),
    ProviderKind.OIDC: frozenset({"groups"}),
    ProviderKind.MICROSOFT: frozenset({"groups"}),
}
SAML_BINDINGS = ("HTTP-Redirect", "HTTP-POST")
# What a saml connection's IdP metadata gives (in place of these fields), and the fields that carry it.
SAML_METADATA_FIELDS = ("idp_entity_id", "idp_sso_url", "idp_sso_binding", "idp_slo_url", "idp_certificates")
SAML_METADATA_SOURCES = ("idp_metadata_xml", "idp_metadata_url")
# A group mapping or a default role never makes anyone an owner (owners are made by owners).
OWNER_ROLE = "owner"
DEFAULT_MEMBERSHIP_SETTINGS: dict[str, Any] = {"attribute_mapping": {}, "default_role": "member",
                                               "group_role_map": {}, "jit_membership": True}
DEFAULT_SAML_SETTINGS: dict[str, Any] = DEFAULT_MEMBERSHIP_SETTINGS | {
    "idp_slo_url": None, "idp_sso_binding": "HTTP-Redirect", "name_id_format": None, "allow_idp_initiated": False}
# The fields update_provider may change besides the kind's own; kind and organization are fixed.
UPDATABLE_FIELDS = frozenset({"name", "enabled", "client_id", "client_secret", "scopes", "trust_email",
                              "allow_signup"})


class UpstreamChecks(Protocol):
    """What the caller's federation layer answers about an administrator's upstream URLs."""

    def url_problem(self, url: str) -> str | None:
        """Why `url` may never be fetched (scheme, form, a refused address), or None."""

    def issuer_problem(self, *, issuer: str, discovery_url: str | None) -> str | None:
        """Why the OpenID provider at `issuer` cannot be used (its discovery document cannot be fetched
        or names another issuer), or None."""

    def saml_idp_settings(self, *, metadata_xml: str | None = None, metadata_url: str | None = None
                          ) -> dict[str, Any]:
        """A SAML IdP's fields (SAML_METADATA_FIELDS) read from its metadata XML, or from the metadata fetched
        from `metadata_url`.

        Raises:
            ValueError: not fetched, or not usable metadata (no IdP, no SSO service, no signing certificate).
        """


def _decrypted(cipher: FieldCipher, provider: IdentityProvider, ciphertext: str) -> str:
    """A secret of `provider` for a sign-in or a logout through it.

    Raises:
        FederationFailed: no key in ENCRYPTION_KEYS decrypts it (one the secret was stored under was dropped
            without `flask secrets rotate`): the person gets a plain refusal and the audit trail the reason.
    """
    try:
        return cipher.decrypt(ciphertext)
    except UndecryptableSecret:
        raise errors.FederationFailed("secret_undecryptable",
                                      f"Signing in with {provider.name} is not available right now.") from None


def decrypt_sp_private_key(cipher: FieldCipher, provider: IdentityProvider) -> str:
    """A saml connection's SP private key (PEM), to sign with; never display it.

    Raises:
        FederationFailed: no key in ENCRYPTION_KEYS decrypts it (`_decrypted`).
    """
    assert provider.sp_private_key_ciphertext is not None
    return _decrypted(cipher, provider, provider.sp_private_key_ciphertext)


def new_sp_key_pair(common_name: str) -> tuple[str, str]:
    """A saml connection's SP key pair: a fresh RSA-2048 private key and a self-signed certificate, PEM.
    The certificate only carries the public key our metadata publishes, so it is long-lived."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + SP_CERTIFICATE_LIFETIME).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            certificate.public_bytes(serialization.Encoding.PEM).decode())


def _is_pem_certificate(value: str) -> bool:
    try:
        x509.load_pem_x509_certificate(value.encode())
    except ValueError:
        return False
    return True


def decrypt_client_secret(cipher: FieldCipher, provider: IdentityProvider) -> str | None:
    """The provider's client secret in plain text, for a request to the upstream; never display it.

    Raises:
        FederationFailed: no key in ENCRYPTION_KEYS decrypts it (`_decrypted`).
    """
    if provider.client_secret_ciphertext is None:
        return None
    return _decrypted(cipher, provider, provider.client_secret_ciphertext)


# --- configuration rules ----------------------------------------------------------------------------


def _base_url(value: str) -> str:
    """A base URL without its terminating "/", so that paths append to it."""
    return value.rstrip("/")


def _settings_problems(kind: ProviderKind, values: dict[str, Any], upstream: UpstreamChecks,
                       check_issuer: bool) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    def check_url(field: str) -> None:
        value = values.get(field)
        if value is not None and (problem := upstream.url_problem(value)):
            add(field, problem)

    if kind == ProviderKind.OIDC:
        issuer = values.get("issuer")
        if not issuer:
            add("issuer", "Required for oidc providers.")
        else:
            check_url("issuer")
            # OIDC Discovery 1.0 §2 / Core §2: an https URL with no query or fragment.
            if urlsplit(issuer).query:
                add("issuer", "Must not contain a query.")
        check_url("discovery_url")
        if check_issuer and issuer and not problems:
            if problem := upstream.issuer_problem(issuer=issuer, discovery_url=values.get("discovery_url")):
                add("issuer", problem)
    elif kind == ProviderKind.MICROSOFT:
        tenant = values.get("tenant")
        allowed, allow_any = values.get("allowed_tenants") or [], values.get("allow_any_tenant", False)
        if not tenant:
            add("tenant", "Required for microsoft providers: common, organizations, consumers or a tenant id.")
        elif tenant not in MULTI_TENANT | {CONSUMERS_TENANT} and not _GUID.fullmatch(tenant):
            add("tenant", "Must be common, organizations, consumers or a tenant id (a GUID).")
        elif tenant in MULTI_TENANT:
            # Anyone with any Entra ID tenant can sign in through common/organizations: say which tenants.
            if allow_any and allowed:
                add("allowed_tenants", "Leave empty when allow_any_tenant is set.")
            elif not allow_any and not allowed:
                add("allowed_tenants", f"Required for tenant {tenant} (the tenant ids whose people may sign in), "
                                       "unless allow_any_tenant is set.")
        else:
            for field, value in (("allowed_tenants", allowed), ("allow_any_tenant", allow_any)):
                if value:
                    add(field, f"Only for tenant common or organizations; tenant {tenant} is one tenant already.")
        bad = [t for t in allowed if not _GUID.fullmatch(t)]
        if bad:
            add("allowed_tenants", f"Not tenant ids (GUIDs): {', '.join(map(repr, bad))}.")
        check_url("authority")
    elif kind == ProviderKind.GITHUB:
        check_url("base_url")
    elif kind == ProviderKind.SAML:
        for field in ("idp_entity_id", "idp_sso_url"):
            if not values.get(field):
                add(field, "Required for saml connections.")
        check_url("idp_sso_url")
        check_url("idp_slo_url")
        certificates = values.get("idp_certificates") or []
        if not certificates:
            add("idp_certificates", "Required for saml connections: the IdP's signing certificate(s), PEM.")
        if not all(_is_pem_certificate(c) for c in certificates):
            add("idp_certificates", "Each must be one PEM certificate.")
        if values.get("idp_sso_binding") not in SAML_BINDINGS:
            add("idp_sso_binding", f"Must be one of {', '.join(SAML_BINDINGS)}.")
    if kind in ATTRIBUTE_KEYS:
        unknown = set(values.get("attribute_mapping") or {}) - ATTRIBUTE_KEYS[kind]
        if unknown:
            add("attribute_mapping", f"Unknown keys: {', '.join(sorted(unknown))}.")
        if values.get("default_role") == OWNER_ROLE:
            add("default_role", "A connection cannot make people owners.")
        if OWNER_ROLE in (values.get("group_role_map") or {}).values():
            add("group_role_map", "A group mapping cannot grant owner.")
    return problems


def _normalised_settings(kind: ProviderKind, values: dict[str, Any], *, organization_owned: bool) -> dict[str, Any]:
    """The stored settings of `kind`: defaults filled in, base URLs without a terminating "/"."""
    if organization_owned and kind in (ProviderKind.OIDC, ProviderKind.MICROSOFT):
        values = DEFAULT_MEMBERSHIP_SETTINGS | values
    if kind == ProviderKind.MICROSOFT:
        values = {"authority": DEFAULT_MICROSOFT_AUTHORITY, "allowed_tenants": [], "allow_any_tenant": False} | values
        values["authority"] = _base_url(values["authority"])
        values["tenant"] = (values.get("tenant") or "").lower()
        values["allowed_tenants"] = list(dict.fromkeys(t.lower() for t in values["allowed_tenants"]))
        return values
    if kind == ProviderKind.GITHUB:
        return {"base_url": _base_url(values.get("base_url") or DEFAULT_GITHUB_BASE_URL)}
    if kind == ProviderKind.SAML:
        return DEFAULT_SAML_SETTINGS | values
    if kind == ProviderKind.GOOGLE:
        hosted_domain = values.get("hosted_domain")
        return {"hosted_domain": hosted_domain.lower() if hosted_domain else None}
    return {"discovery_url": None} | values  # oidc: the issuer exactly as given (it is compared exactly)


def _read_saml_metadata(kind: ProviderKind, given: dict[str, Any], upstream: UpstreamChecks) -> dict[str, Any]:
    """`given` with idp_metadata_xml or idp_metadata_url replaced by the IdP fields its metadata gives
    (SAML_METADATA_FIELDS; an idp_slo_url it lacks is None).

    Raises:
        ValidationFailed: metadata for another kind, both sources, a field the metadata gives also given,
            or metadata that cannot be fetched or used.
    """
    sources = {field: given[field] for field in SAML_METADATA_SOURCES if field in given}
    if not sources:
        return given
    rest = {field: value for field, value in given.items() if field not in SAML_METADATA_SOURCES}
    if kind != ProviderKind.SAML:
        _raise_if({field: [f"Not a setting of {kind} providers."] for field in sources})
    if len(sources) > 1:
        _raise_if({field: ["Give the metadata one way: idp_metadata_xml or idp_metadata_url."] for field in sources})
    _raise_if({field: ["Read from the metadata: leave it out, or give the fields without metadata."]
               for field in SAML_METADATA_FIELDS if field in rest})
    (source, value), = sources.items()
    try:
        read = upstream.saml_idp_settings(**{source.removeprefix("idp_"): value})
    except ValueError as err:
        raise errors.ValidationFailed(details={source: [str(err)]}) from None
    return rest | read


def _foreign_fields(kind: ProviderKind, given: dict[str, Any], *, organization_owned: bool) -> dict[str, list[str]]:
    problems = {field: [f"Not a setting of {kind} providers."] for field in given
                if kind not in KIND_FIELDS.get(field, ())}
    if not organization_owned and kind != ProviderKind.SAML:
        problems |= {field: ["Only for an organization's own connections (it adds people to the organization)."]
                     for field in given if field in MEMBERSHIP_FIELDS}
    return problems


def _common_problems(kind: ProviderKind, *, name: str, scopes: list[str], client_id: str | None,
                     has_secret: bool) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not name.strip():
        problems["name"] = ["Must not be blank."]
    if kind == ProviderKind.SAML:
        # SAML has no client registration: the connection is its metadata and certificates.
        for field, given in (("client_id", client_id), ("scopes", scopes)):
            if given:
                problems[field] = ["Not a setting of saml connections."]
        return problems
    if not client_id:
        problems["client_id"] = ["Required: the client id registered at the provider."]
    if not has_secret:
        problems["client_secret"] = ["Required: the client secret registered at the provider."]
    if kind != ProviderKind.GITHUB and "openid" not in scopes:
        # The identity comes from the ID token, which only an openid request returns (OIDC Core §3.1.2.1).
        problems["scopes"] = ["Must include openid."]
    return problems


def _raise_if(problems: dict[str, list[str]]) -> None:
    if problems:
        raise errors.ValidationFailed(details=problems)


# --- lifecycle --------------------------------------------------------------------------------------


def create_provider(db: Session, *, actor: Actor, cipher: FieldCipher, upstream: UpstreamChecks, kind: str,
                    name: str, client_id: str | None = None, client_secret: str | None = None,
                    scopes: list[str] | None = None,
                    enabled: bool = True, trust_email: bool = False, allow_signup: bool = True,
                    organization_id: uuid.UUID | None = None, **kind_settings: Any) -> IdentityProvider:
    """Register an upstream identity provider; `kind_settings` are the kind's fields (module docstring).

    An oidc provider's issuer is checked by fetching its discovery document (through `upstream`).
    `scopes` defaults per kind (DEFAULT_SCOPES). `organization_id` None: a platform-wide provider.

    Raises:
        ValidationFailed: a setting breaks a rule, or belongs to another kind; details per field.
    """
    kind = ProviderKind(kind)
    scopes = list(dict.fromkeys(scopes)) if scopes is not None else list(DEFAULT_SCOPES.get(kind, []))
    kind_settings = _read_saml_metadata(kind, kind_settings, upstream)
    organization_owned = organization_id is not None
    _raise_if(_foreign_fields(kind, kind_settings, organization_owned=organization_owned))
    settings = _normalised_settings(kind, kind_settings, organization_owned=organization_owned)
    problems = _common_problems(kind, name=name, scopes=scopes, client_id=client_id, has_secret=bool(client_secret))
    if kind == ProviderKind.SAML and client_secret is not None:
        problems["client_secret"] = ["Not a setting of saml connections."]
    problems |= _settings_problems(kind, settings, upstream, check_issuer=not problems)
    _raise_if(problems)
    provider = IdentityProvider(kind=kind, organization_id=organization_id, name=name.strip(), enabled=enabled,
                                client_id=client_id,
                                client_secret_ciphertext=cipher.encrypt(client_secret) if client_secret else None,
                                scopes=scopes, trust_email=trust_email, allow_signup=allow_signup, settings=settings)
    if kind == ProviderKind.SAML:
        private_key, provider.settings["sp_certificate"] = new_sp_key_pair(f"Gatehouse SP {provider.name}")
        provider.sp_private_key_ciphertext = cipher.encrypt(private_key)
    db.add(provider)
    db.flush()  # assign the id: the audit event and the callback URL name it
    audit.record_event(db, actor=actor, organization_id=organization_id, action="identity_provider.created",
                       target_type="identity_provider", target_id=provider.id,
                       details={"kind": str(kind), "name": provider.name})
    return provider


def get_provider(db: Session, provider_id: uuid.UUID) -> IdentityProvider | None:
    """The provider with this id, or None."""
    return db.get(IdentityProvider, provider_id)


def require_provider(db: Session, provider_id: uuid.UUID) -> IdentityProvider:
    """The provider with this id.

    Raises:
        NotFound: no such provider.
    """
    provider = get_provider(db, provider_id)
    if provider is None:
        raise errors.NotFound("Identity provider not found.")
    return provider


def list_all_providers(db: Session, *, page: int, per_page: int) -> tuple[list[IdentityProvider], int]:
    """One page of every provider, platform-wide and organizations' ones, oldest first, and how many there are.

    The platform administrators' view: callers decide that the caller is one.
    """
    stmt = select(IdentityProvider).order_by(IdentityProvider.created_at, IdentityProvider.id)
    return paginate(db, stmt, page=page, per_page=per_page)


def update_provider(db: Session, *, actor: Actor, cipher: FieldCipher, upstream: UpstreamChecks,
                    provider: IdentityProvider, **changes: Any) -> IdentityProvider:
    """Change the given fields (UPDATABLE_FIELDS and the kind's own); omitted fields keep their values.

    The resulting configuration is checked as on creation; an oidc provider's discovery document is
    fetched again when its issuer or discovery_url changes. discovery_url and hosted_domain may be
    set to None (removed).

    Raises:
        ValidationFailed: the result breaks a rule, or a field belongs to another kind; details per field.
        Conflict: disabling a connection a domain enforces single sign-on through.
        TypeError: a field that cannot be updated (kind, organization_id) was passed.
    """
    unknown = set(changes) - UPDATABLE_FIELDS - set(KIND_FIELDS) - set(SAML_METADATA_SOURCES)
    if unknown:
        raise TypeError(f"update_provider() cannot change: {', '.join(sorted(unknown))}")
    if changes.get("enabled") is False:
        domains.require_not_enforcing_through(db, provider=provider)
    kind = ProviderKind(provider.kind)
    changes = _read_saml_metadata(kind, changes, upstream)
    kind_changes = {field: value for field, value in changes.items() if field in KIND_FIELDS}
    organization_owned = provider.organization_id is not None
    _raise_if(_foreign_fields(kind, kind_changes, organization_owned=organization_owned))
    settings = _normalised_settings(kind, provider.settings | kind_changes, organization_owned=organization_owned)
    if "scopes" in changes:
        changes["scopes"] = list(dict.fromkeys(changes["scopes"]))
    merged = {field: changes.get(field, getattr(provider, field)) for field in ("name", "scopes", "client_id")}
    problems = _common_problems(kind, **merged, has_secret=bool(changes.get("client_secret", True)))
    if kind == ProviderKind.SAML and "client_secret" in changes:
        problems["client_secret"] = ["Not a setting of saml connections."]
    refetch = any(settings.get(field) != provider.settings.get(field) for field in ("issuer", "discovery_url"))
    problems |= _settings_problems(kind, settings, upstream, check_issuer=refetch and not problems)
    _raise_if(problems)

    changed = sorted(field for field, value in changes.items()
                     if field in UPDATABLE_FIELDS and field != "client_secret" and getattr(provider, field) != value)
    for field in changed:
        setattr(provider, field, changes[field].strip() if field == "name" else changes[field])
    if settings != provider.settings:
        changed += sorted(field for field in settings if settings[field] != provider.settings.get(field))
        provider.settings = settings
    if "client_secret" in changes:
        # Always counted as a change: whether it differs would take a decryption to tell, and saying so
        # would tell the caller something about the stored secret.
        provider.client_secret_ciphertext = cipher.encrypt(changes["client_secret"])
        changed.append("client_secret")
    if changed:
        db.flush()  # bump updated_at before the caller dumps the provider
        # Field names only: the secret's value never reaches the trail.
        audit.record_event(db, actor=actor, organization_id=provider.organization_id,
                           action="identity_provider.updated", target_type="identity_provider",
                           target_id=provider.id, details={"fields": sorted(changed)})
    return provider


def delete_provider(db: Session, *, actor: Actor, provider: IdentityProvider) -> None:
    """Delete the provider; the identities linked through it go with it (ON DELETE CASCADE), so nobody
    signs in through it again. Accounts themselves stay.

    Raises:
        Conflict: some account would be left with no way to sign in (no password, no other identity), or
            a domain enforces single sign-on through it.
    """
    domains.require_not_enforcing_through(db, provider=provider)
    other = aliased(ExternalIdentity)
    stranded = db.scalar(select(func.count()).select_from(ExternalIdentity).join(User).where(
        ExternalIdentity.provider_id == provider.id, User.password_hash.is_(None),
        ~select(other.id).where(other.user_id == User.id, other.provider_id != provider.id).exists()))
    if stranded:
        raise errors.Conflict(f"{stranded} account(s) can sign in only through this provider; disable it instead, "
                              "or have them set a password first.", details={"stranded_accounts": stranded})
    audit.record_event(db, actor=actor, organization_id=provider.organization_id, action="identity_provider.deleted",
                       target_type="identity_provider", target_id=provider.id,
                       details={"kind": str(provider.kind), "name": provider.name})
    db.delete(provider)
