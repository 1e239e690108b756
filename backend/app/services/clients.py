"""OAuth clients: registration, configuration rules, secret rotation and CORS origins.

Every rule about what a client may be lives in `_configuration_problems`, which
both creation and updates run on the client's complete resulting settings, so
an update can never produce a client that creation would have refused.

The format of each redirect URI (absolute, https except loopback, no fragment)
is checked by `app.schemas.clients`, which the API and the CLI both load.

Secrets are generated here, returned once in an `IssuedClient` and stored only
as SHA-256 (DESIGN.md, "Secrets at rest"); `OAuthClient.check_client_secret`
compares them in constant time.

A client is a platform client (organization_id None), managed by platform
administrators, or belongs to one organization, whose admins manage it through
services.organization_clients (which checks their permission, then scopes every lookup
with `require_organization_client` and `list_clients`). Only `list_all_clients` lists
every client.
"""

from __future__ import annotations

import base64
import binascii
import copy
import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable
import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import JSON, Select, inspect, select, update
from sqlalchemy.orm import Session, make_transient_to_detached, scoped_session
from sqlalchemy.orm.util import identity_key

from app import errors
from app.models import OAuthClient, TokenEndpointAuthMethod
from app.models.client import API_SCOPE, GRANT_TYPES, ID_TOKEN_ALGS, MAX_LIFETIME, MIN_LIFETIME, OIDC_SCOPES
from app.models.base import utcnow
from app.config import MAX_CLIENT_ACCESS_TOKEN_LIFETIME
from app.security.redirect_uris import redirect_uri_problem
from app.security.tokens import hash_token, new_token
from app.services import audit
from app.services.actor import Actor
from app.services.pagination import paginate
from app.services.redis_feed import RedisFeed

log = logging.getLogger(__name__)

CLIENT_TYPES = ("public", "confidential")
# Scopes a user grants: a token obtained without a user (client credentials) cannot carry them.
USER_ONLY_SCOPES = frozenset({"openid", "offline_access"})
SECRET_METHODS = frozenset({TokenEndpointAuthMethod.CLIENT_SECRET_BASIC, TokenEndpointAuthMethod.CLIENT_SECRET_POST})
CONFIDENTIAL_METHODS = (*sorted(SECRET_METHODS), TokenEndpointAuthMethod.PRIVATE_KEY_JWT)
MAX_JWKS_KEYS = 10
MIN_RSA_BITS = 2048
# JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# private_key_jwt: the algorithm each kind of registered key signs client assertions with. They are
# what the token endpoint verifies (Authlib decodes assertions with joserfc's recommended algorithms)
# and what discovery advertises; a key no listed algorithm can use could never authenticate.
ASSERTION_ALG_BY_KEY_TYPE = {"RSA": "RS256", "EC": "ES256"}
ASSERTION_ALGS = tuple(ASSERTION_ALG_BY_KEY_TYPE.values())
_ES256_CURVE = "P-256"

# The fields update_client may change; the type and authentication method are fixed at creation.
UPDATABLE_FIELDS = frozenset({
    "name", "redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes", "first_party", "jwks",
    "id_token_signed_response_alg", "access_token_lifetime", "refresh_token_lifetime", "organization_required",
})
# Settings that _configuration_problems does not look at: any value of their type is valid.
_UNCHECKED_FIELDS = frozenset({"organization_required"})


@dataclass(frozen=True)
class IssuedClient:
    client: OAuthClient
    # The plain client secret: returned to the caller once and never stored. None when the
    # client has no secret (public and private_key_jwt clients).
    client_secret: str | None


def client_type_of(client: OAuthClient) -> str:
    """'public' for clients that cannot keep a secret (auth method none), else 'confidential'."""
    return "public" if client.is_public else "confidential"


def _unique(values: Iterable[str]) -> list[str]:
    """The values in their first-seen order, without repeats."""
    return list(dict.fromkeys(values))


def _jwks_problems(jwks: Any) -> list[str]:
    """Why `jwks` is not an acceptable JWK Set of public signing keys (RFC 7517 §5), if it is not."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        return ['Must be a JWK Set: an object with a "keys" array.']
    keys = jwks["keys"]
    if not keys:
        return ["Must contain at least one public key."]
    if len(keys) > MAX_JWKS_KEYS:
        return [f"Must contain at most {MAX_JWKS_KEYS} keys."]
    problems = []
    for index, key in enumerate(keys):
        where = f"keys[{index}]"
        if not isinstance(key, dict):
            problems.append(f"{where}: must be a JWK object.")
            continue
        private = sorted(_PRIVATE_JWK_MEMBERS & key.keys())
        if private:
            # A client registers only its public key; private material here means it leaked.
            problems.append(f"{where}: contains private or symmetric key material ({', '.join(private)}); "
                            "register the public key only.")
            continue
        alg = ASSERTION_ALG_BY_KEY_TYPE.get(key.get("kty"))
        if alg is None:
            problems.append(f"{where}: kty must be one of {', '.join(sorted(ASSERTION_ALG_BY_KEY_TYPE))} "
                            f"(client assertions are signed with {' or '.join(ASSERTION_ALGS)}).")
            continue
        if key["kty"] == "EC" and key.get("crv") != _ES256_CURVE:
            problems.append(f"{where}: EC keys must be on the {_ES256_CURVE} curve (ES256).")
            continue
        if key.get("alg", alg) != alg:
            problems.append(f"{where}: a {key['kty']} key signs client assertions with {alg}, so alg must be {alg}.")
            continue
        if key.get("use", "sig") != "sig":
            problems.append(f"{where}: use must be sig.")
            continue
        if key["kty"] == "RSA" and isinstance(key.get("n"), str):
            try:
                modulus = base64.urlsafe_b64decode(key["n"] + "=" * (-len(key["n"]) % 4))
            except (binascii.Error, ValueError):
                problems.append(f"{where}: n is not base64url.")
                continue
            if len(modulus.lstrip(b"\0")) * 8 < MIN_RSA_BITS:
                problems.append(f"{where}: RSA keys must have at least {MIN_RSA_BITS} bits.")
                continue
        try:
            JWKRegistry.import_key(key)
        except (JoseError, ValueError, TypeError) as err:
            problems.append(f"{where}: not a valid public key ({err}).")
    return problems


def _lifetime_problems(value: Any, maximum: int) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_LIFETIME <= value <= maximum:
        return [f"Must be a whole number of seconds from {MIN_LIFETIME} to {maximum}, or null for the default."]
    return []


def _configuration_problems(*, name: str, client_type: str, token_endpoint_auth_method: str,
                            redirect_uris: list[str], post_logout_redirect_uris: list[str],
                            grant_types: list[str], scopes: list[str],
                            jwks: Any, id_token_signed_response_alg: str, access_token_lifetime: Any,
                            refresh_token_lifetime: Any, first_party: bool,
                            organization_id: uuid.UUID | None, jwks_changed: bool = True) -> dict[str, list[str]]:
    """Every rule a client's complete configuration must satisfy, as per-field messages.

    A key set is judged when it is set (`jwks_changed`), not again on an update that leaves it
    alone: the key rules have grown since some stored sets were accepted, and such a client must
    stay editable."""
    problems: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    if not name.strip():
        add("name", "Must not be blank.")
    if first_party and organization_id is not None:
        # Skipping consent is a platform decision: an organization's admins cannot let their
        # own client act for users without asking them.
        add("first_party", "Only platform clients may skip consent.")

    if client_type not in CLIENT_TYPES:
        add("client_type", "Must be public or confidential.")
    elif client_type == "public" and token_endpoint_auth_method != TokenEndpointAuthMethod.NONE:
        # A public client cannot keep a secret or a private key (RFC 6749 §2.1).
        add("token_endpoint_auth_method", "Public clients authenticate with none.")
    elif client_type == "confidential" and token_endpoint_auth_method not in CONFIDENTIAL_METHODS:
        add("token_endpoint_auth_method", f"Confidential clients use one of {', '.join(CONFIDENTIAL_METHODS)}.")

    if token_endpoint_auth_method == TokenEndpointAuthMethod.PRIVATE_KEY_JWT:
        if jwks is None:
            add("jwks", "Required for private_key_jwt: the client's public keys as a JWK Set.")
        elif jwks_changed:
            for message in _jwks_problems(jwks):
                add("jwks", message)
    elif jwks is not None:
        add("jwks", "Only private_key_jwt clients register keys.")

    unknown = [g for g in grant_types if g not in GRANT_TYPES]
    if unknown:
        add("grant_types", f"Unsupported: {', '.join(unknown)}. Use {', '.join(GRANT_TYPES)}.")
    if not grant_types:
        add("grant_types", "At least one grant type is required.")
    if "refresh_token" in grant_types and "authorization_code" not in grant_types:
        add("grant_types", "refresh_token requires authorization_code.")
    if "client_credentials" in grant_types and client_type == "public":
        # RFC 6749 §4.4: the client credentials grant is for confidential clients only.
        add("grant_types", "Public clients cannot use client_credentials.")
    if "authorization_code" in grant_types and not redirect_uris:
        add("redirect_uris", "authorization_code requires at least one redirect URI.")
    for field, uris in (("redirect_uris", redirect_uris), ("post_logout_redirect_uris", post_logout_redirect_uris)):
        for uri in uris:
            if problem := redirect_uri_problem(uri):
                add(field, f"{uri!r}: {problem}")

    bad_shapes = [s for s in scopes if not isinstance(s, str) or not (s in OIDC_SCOPES or API_SCOPE.fullmatch(s))]
    if bad_shapes:
        add("scopes", f"Unknown scope shape: {', '.join(map(repr, bad_shapes))}. Use an OIDC scope "
                      f"({', '.join(sorted(OIDC_SCOPES))}) or a lower-case API scope such as invoices:read.")
    user_only = sorted(USER_ONLY_SCOPES.intersection(scopes))
    if "client_credentials" in grant_types and user_only:
        add("scopes", f"Clients with client_credentials may not hold {', '.join(user_only)}: "
                      "a token issued without a user has no subject to identify.")

    if id_token_signed_response_alg not in ID_TOKEN_ALGS:
        add("id_token_signed_response_alg", f"Must be one of {', '.join(ID_TOKEN_ALGS)}.")
    # Access tokens are short-lived JWTs that cannot be recalled except by denylist; the cap
    # also bounds how long a rotated-out signing key must stay published (Settings.key_retention).
    for field, value, maximum in (("access_token_lifetime", access_token_lifetime, MAX_CLIENT_ACCESS_TOKEN_LIFETIME),
                                  ("refresh_token_lifetime", refresh_token_lifetime, MAX_LIFETIME)):
        for message in _lifetime_problems(value, maximum):
            add(field, message)
    return problems


def _response_types(grant_types: list[str]) -> list[str]:
    return ["code"] if "authorization_code" in grant_types else []


def create_client(db: Session, *, actor: Actor, name: str, client_type: str, redirect_uris: Iterable[str],
                  post_logout_redirect_uris: Iterable[str] = (), grant_types: Iterable[str],
                  scopes: Iterable[str], token_endpoint_auth_method: str | None = None,
                  jwks: dict[str, Any] | None = None, first_party: bool = False,
                  id_token_signed_response_alg: str = "RS256", access_token_lifetime: int | None = None,
                  refresh_token_lifetime: int | None = None, organization_id: uuid.UUID | None = None,
                  organization_required: bool = False) -> IssuedClient:
    """Register a client and return it with its secret, which is never shown again.

    `token_endpoint_auth_method` defaults to none for public clients and
    client_secret_basic for confidential ones. Public clients always require PKCE;
    so do confidential ones (RFC 9700 §2.1.1). `organization_id` makes the client
    that organization's (None: a platform client); organization clients cannot be
    first_party. `organization_required` makes every authorization of the client
    happen in an organization.

    Raises:
        ValidationFailed: the configuration breaks a rule; details per field.
    """
    if token_endpoint_auth_method is None:
        token_endpoint_auth_method = (TokenEndpointAuthMethod.NONE if client_type == "public"
                                      else TokenEndpointAuthMethod.CLIENT_SECRET_BASIC)
    redirect_uris, grant_types, scopes = _unique(redirect_uris), _unique(grant_types), _unique(scopes)
    post_logout_redirect_uris = _unique(post_logout_redirect_uris)
    problems = _configuration_problems(
        name=name, client_type=client_type, token_endpoint_auth_method=token_endpoint_auth_method,
        redirect_uris=redirect_uris, post_logout_redirect_uris=post_logout_redirect_uris,
        grant_types=grant_types, scopes=scopes, jwks=jwks, id_token_signed_response_alg=id_token_signed_response_alg,
        access_token_lifetime=access_token_lifetime, refresh_token_lifetime=refresh_token_lifetime,
        first_party=first_party, organization_id=organization_id)
    if problems:
        raise errors.ValidationFailed(details=problems)

    secret = new_token(32) if token_endpoint_auth_method in SECRET_METHODS else None
    client = OAuthClient(
        client_id=new_token(16),
        client_secret_hash=hash_token(secret) if secret else None,
        name=name.strip(),
        organization_id=organization_id,
        organization_required=organization_required,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris,
        grant_types=grant_types,
        response_types=_response_types(grant_types),
        scopes=scopes,
        token_endpoint_auth_method=str(token_endpoint_auth_method),
        jwks=jwks,
        require_pkce=True,
        first_party=first_party,
        id_token_signed_response_alg=id_token_signed_response_alg,
        access_token_lifetime=access_token_lifetime,
        refresh_token_lifetime=refresh_token_lifetime,
    )
    db.add(client)
    db.flush()  # assign id and timestamps before the caller dumps the client
    _mark_changed(db, client)  # its redirect URIs may add CORS origins (ClientCache.cors_origins)
    audit.record_event(db, actor=actor, organization_id=client.organization_id, action="client.created",
                       target_type="client", target_id=client.client_id,
                       details={"name": client.name, "client_type": client_type,
                                "token_endpoint_auth_method": client.token_endpoint_auth_method,
                                "grant_types": grant_types})
    return IssuedClient(client=client, client_secret=secret)


def get_client(db: Session, client_id: str) -> OAuthClient | None:
    """The client with this client_id, or None."""
    return db.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def find_platform_client_by_name(db: Session, name: str) -> OAuthClient | None:
    """The first platform client (no organization's) registered under this exact name, or None
    (names are not unique, and an organization may use any name for its own clients)."""
    return db.scalar(select(OAuthClient).where(OAuthClient.name == name, OAuthClient.organization_id.is_(None))
                     .order_by(OAuthClient.created_at).limit(1))


def require_client(db: Session, client_id: str) -> OAuthClient:
    """The client with this client_id.

    Raises:
        NotFound: no such client.
    """
    client = get_client(db, client_id)
    if client is None:
        raise errors.NotFound("Client not found.")
    return client


def require_organization_client(db: Session, *, organization_id: uuid.UUID, client_id: str) -> OAuthClient:
    """The client with this client_id if the organization owns it.

    Raises:
        NotFound: no such client in this organization (another organization's client
            and a platform client are not found either: ids do not leak).
    """
    if organization_id is None:
        # `organization_id == None` would compare as IS NULL and find platform clients.
        raise ValueError("an organization's client is looked up with its organization's id")
    client = db.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id,
                                                 OAuthClient.organization_id == organization_id))
    if client is None:
        raise errors.NotFound("Client not found.")
    return client


def _oldest_first(stmt: Select[OAuthClient]) -> Select[OAuthClient]:
    return stmt.order_by(OAuthClient.created_at, OAuthClient.client_id)


def list_clients(db: Session, *, organization_id: uuid.UUID, page: int,
                 per_page: int) -> tuple[list[OAuthClient], int]:
    """One page of the organization's clients, oldest first, and how many it has.

    Raises:
        ValueError: no organization_id (every client is list_all_clients, for platform administrators).
    """
    if organization_id is None:
        # `organization_id == None` would compare as IS NULL and list platform clients.
        raise ValueError("an organization's clients are listed with its organization's id")
    return paginate(db, _oldest_first(select(OAuthClient).where(OAuthClient.organization_id == organization_id)),
                    page=page, per_page=per_page)


def list_all_clients(db: Session, *, page: int, per_page: int) -> tuple[list[OAuthClient], int]:
    """One page of every client, platform and organization ones, oldest first, and how many there are.

    The platform administrators' view: callers decide that the caller is one.
    """
    return paginate(db, _oldest_first(select(OAuthClient)), page=page, per_page=per_page)


def update_client(db: Session, *, actor: Actor, client: OAuthClient, **changes: Any) -> OAuthClient:
    """Change the given fields (see UPDATABLE_FIELDS); omitted fields keep their values.

    The whole resulting configuration is checked as on creation (so an organization's
    client cannot become first_party). Lifetimes and jwks may be set to None (the
    server default, and no keys). Changing the grant types recomputes the response types.

    Raises:
        ValidationFailed: the resulting configuration breaks a rule; details per field.
        TypeError: a field that cannot be updated was passed.
    """
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise TypeError(f"update_client() cannot change: {', '.join(sorted(unknown))}")
    for field in ("redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes"):
        if field in changes:
            changes[field] = _unique(changes[field])
    merged = {field: changes.get(field, getattr(client, field)) for field in UPDATABLE_FIELDS}
    problems = _configuration_problems(
        client_type=client_type_of(client), token_endpoint_auth_method=client.token_endpoint_auth_method,
        organization_id=client.organization_id, jwks_changed="jwks" in changes,
        **{k: v for k, v in merged.items() if k not in _UNCHECKED_FIELDS})
    if problems:
        raise errors.ValidationFailed(details=problems)

    if "name" in changes:
        changes["name"] = changes["name"].strip()
    changed = sorted(field for field, value in changes.items() if getattr(client, field) != value)
    for field in changed:
        setattr(client, field, changes[field])
    if "grant_types" in changed:
        client.response_types = _response_types(client.grant_types)
    if changed:
        db.flush()  # bump updated_at before the caller dumps the client
        _mark_changed(db, client)
        # Field names only: values may be long (URIs, keys) and the trail records who changed what.
        audit.record_event(db, actor=actor, organization_id=client.organization_id, action="client.updated",
                           target_type="client",
                           target_id=client.client_id, details={"fields": changed})
    return client


def rotate_client_secret(db: Session, *, actor: Actor, client: OAuthClient) -> IssuedClient:
    """Replace the client's secret with a new one; the old secret stops working at once.

    Raises:
        Conflict: the client has no secret (public or private_key_jwt), or another
            rotation of the same client committed first.
    """
    if client.token_endpoint_auth_method not in SECRET_METHODS:
        raise errors.Conflict(
            f"This client authenticates with {client.token_endpoint_auth_method} and has no secret to rotate."
            + (" Update its jwks instead." if client.token_endpoint_auth_method == "private_key_jwt" else ""),
            details={"token_endpoint_auth_method": [client.token_endpoint_auth_method]})
    secret = new_token(32)
    # Conditional on the hash we read, so of two concurrent rotations exactly one
    # wins and no caller is handed a secret that is already dead.
    rotated = db.execute(
        update(OAuthClient)
        .where(OAuthClient.id == client.id, OAuthClient.client_secret_hash == client.client_secret_hash)
        .values(client_secret_hash=hash_token(secret), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if rotated.rowcount != 1:
        raise errors.Conflict("The secret was rotated concurrently; retry to get a fresh one.")
    _mark_changed(db, client)
    db.refresh(client)
    audit.record_event(db, actor=actor, organization_id=client.organization_id, action="client.secret_rotated",
                       target_type="client",
                       target_id=client.client_id)
    return IssuedClient(client=client, client_secret=secret)


def delete_client(db: Session, *, actor: Actor, client: OAuthClient) -> None:
    """Delete the client; its codes, refresh tokens and consents go with it (ON DELETE CASCADE).

    Access tokens already issued are self-contained JWTs and stay valid until they expire.
    """
    audit.record_event(db, actor=actor, organization_id=client.organization_id, action="client.deleted",
                       target_type="client", target_id=client.client_id,
                       details={"name": client.name})
    _mark_changed(db, client)
    db.delete(client)


# --- The protocol endpoints' client cache -------------------------------------------

# Session.info key: the client_ids whose rows the session's transaction changed. When it
# commits, the app hands them to ClientCache.invalidate (app/__init__.py); a rollback drops them.
CHANGED_CLIENTS_KEY = "gatehouse.changed_client_ids"


def _mark_changed(db: Session, client: OAuthClient) -> None:
    db.info.setdefault(CHANGED_CLIENTS_KEY, set()).add(client.client_id)


def mark_organization_clients_changed(db: Session, organization_id: uuid.UUID) -> None:
    """The organization's name or slug changed: what the client cache keeps of each of its
    clients (the organization claims of their own tokens) must be read again."""
    for client in db.scalars(select(OAuthClient).where(OAuthClient.organization_id == organization_id)):
        _mark_changed(db, client)


class ClientVersions(Protocol):
    def current(self, client_id: str) -> Hashable | None:
        """The client's version, changed by every committed change; None when it cannot be known."""

    def registry(self) -> Hashable | None:
        """The version of the whole registry, changed by every committed change to any client
        (creation included); None when it cannot be known."""

    def bump(self, client_ids: Iterable[str]) -> None: ...


class MemoryClientVersions:
    """For a single process (development, tests without Redis)."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._changes = 0
        self._lock = threading.Lock()

    def current(self, client_id: str) -> int | None:
        return self._versions.get(client_id, 0)

    def registry(self) -> int | None:
        return self._changes

    def bump(self, client_ids: Iterable[str]) -> None:
        with self._lock:
            self._changes += 1
            for client_id in client_ids:
                self._versions[client_id] = self._versions.get(client_id, 0) + 1


class RedisClientVersions:
    """Client versions shared by every process and instance through Redis pub/sub, read
    without a round trip to Redis (services.redis_feed).

    bump() publishes the changed client_ids on one channel once their transaction has
    committed. Every process counts, on its feed, the changes of each client.

    A version is (subscription, count). Each confirmed subscription starts a new count, so
    nothing cached under an earlier one is trusted again: changes published while a process
    was not subscribed cannot be missed. While the feed cannot vouch for itself current() is
    None and the cache asks the database. A bump lost because Redis failed right after the
    commit is bounded by the cache's ttl.
    """

    def __init__(self, redis: Redis, prefix: str, feed: RedisFeed) -> None:
        self.redis = redis
        self.channel = f"{prefix}:client-changes"
        self._feed = feed
        self._counted = _Counts(0)  # replaced whole on each subscription: readers see one consistent count
        feed.listen(self.channel, self._take_in, self._subscribed)

    def current(self, client_id: str) -> tuple[int, int] | None:
        subscription, counted = self._feed.live(), self._counted
        if not subscription or counted.subscription != subscription:
            return None
        return subscription, counted.per_client.get(client_id, 0)

    def registry(self) -> tuple[int, int] | None:
        subscription, counted = self._feed.live(), self._counted
        if not subscription or counted.subscription != subscription:
            return None
        return subscription, counted.changes

    def _subscribed(self, subscription: int) -> None:
        self._counted = _Counts(subscription)

    def _take_in(self, data: bytes) -> None:
        counted = self._counted
        counted.changes += 1
        for client_id in data.decode().split():
            counted.per_client[client_id] = counted.per_client.get(client_id, 0) + 1

    def bump(self, client_ids: Iterable[str]) -> None:
        try:
            self.redis.publish(self.channel, " ".join(sorted(client_ids)))
        except RedisError as err:
            log.error("could not publish a client change (%s); other processes may use the previous "
                      "settings of %s until CLIENT_CACHE_SECONDS pass", err, ", ".join(sorted(client_ids)))


@dataclass
class _Counts:
    """The changes counted on one subscription (the feed calls _take_in under its lock)."""
    subscription: int
    changes: int = 0
    per_client: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class _Entry:
    values: Any  # a client's column values (each hit gets copies), or the CORS origins (a frozenset)
    version: Hashable
    expires_at: float


def _column_values(client: OAuthClient) -> dict[str, Any]:
    return {attr.key: copy.deepcopy(getattr(client, attr.key)) for attr in inspect(OAuthClient).column_attrs}


class ClientCache:
    """Clients by client_id for the protocol endpoints, which authenticate one on every request;
    with them the organization claims of their own tokens, and the CORS origins of all of them.

    A hit costs one version read (in memory: see RedisClientVersions) instead of a query,
    a pool checkout with its ping, and a commit round trip. update_client,
    rotate_client_secret and delete_client bump the client's version once their
    transaction commits, so every process and instance sharing the Redis sees a change
    on its next lookup after Redis delivers it (microseconds on one network): a rotated
    secret stops working everywhere. Only changes that bypass those functions (SQL by
    hand), or a bump lost because Redis failed right after the commit, can go unseen, for
    `ttl` seconds at most. If the version cannot be known, the database is asked. Unknown
    client_ids are not cached.

    A hit returns the instance the caller's session already holds, if it holds this client;
    otherwise a new, detached OAuthClient with every column loaded, which no other request
    sees. Detached, so that a hit opens no session: a client-credentials token or an
    introspection then runs without a database connection, and a commit has no instance to
    expire and reload. Nothing stores a client through a relationship (rows take `client.id`),
    and a detached copy that is added to a session joins it as persistent, unmodified.
    Safe to share between threads. ttl <= 0: no caching.
    """

    def __init__(self, versions: ClientVersions, *, ttl: float, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.versions = versions
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._claims: dict[str, _Entry] = {}
        self._origins: _Entry | None = None
        self._lock = threading.Lock()

    def client_claims(self, db: Session, client: OAuthClient,
                      load: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        """`load(db, client=client)`: the organization claims of a token issued to the client itself, kept
        under the client's version (mark_organization_clients_changed moves it when the
        organization's name or slug changes; deleting the organization deletes its clients)."""
        if client.organization_id is None:  # a platform client's tokens have none: nothing to read or keep
            return load(db, client=client)
        version = self.versions.current(client.client_id) if self.ttl > 0 else None
        if version is None or _changed_in(db):
            return load(db, client=client)
        cached = self._claims.get(client.client_id)
        if self._fresh(cached, version):
            return dict(cached.values)
        claims = load(db, client=client)
        self._keep(self._claims, client.client_id, _Entry(dict(claims), version, self._clock() + self.ttl))
        return claims

    def cors_origins(self, db: Session) -> frozenset[str]:
        """`all_cors_origins`, read again only once a client has changed (or `ttl` has passed):
        every CORS request asks, and the answer takes a scan of every client's redirect URIs."""
        version = self.versions.registry() if self.ttl > 0 else None
        # A transaction that changed a client sees its change, and keeps it out of the cache: it may roll back.
        if version is None or _changed_in(db):
            return frozenset(all_cors_origins(db))
        cached = self._origins
        if self._fresh(cached, version):
            return cached.values
        origins = frozenset(all_cors_origins(db))
        self._origins = _Entry(origins, version, self._clock() + self.ttl)
        return origins

    def get(self, db: Session, client_id: str) -> OAuthClient | None:
        """The client with this client_id, or None: `get_client`, usually without a query."""
        if self.ttl <= 0:
            return get_client(db, client_id)
        version = self.versions.current(client_id)
        if version is None:
            return get_client(db, client_id)
        entry = self._entries.get(client_id)
        if self._fresh(entry, version):
            return _held(db, entry.values["id"]) or _detached_copy(entry.values)
        client = get_client(db, client_id)
        # Not what this very transaction changed: it may yet roll back.
        if client is not None and client_id not in _changed_in(db):
            self._keep(self._entries, client_id, _Entry(_column_values(client), version, self._clock() + self.ttl))
        else:
            self._entries.pop(client_id, None)
        return client

    def _fresh(self, entry: _Entry | None, version: Hashable) -> bool:
        """Whether `entry` may be used: kept under the current version, and within its ttl."""
        return entry is not None and entry.version == version and self._clock() < entry.expires_at

    def _keep(self, entries: dict[str, _Entry], client_id: str, entry: _Entry) -> None:
        with self._lock:
            if client_id not in entries and len(entries) >= self.max_entries:
                entries.pop(next(iter(entries)))
            entries[client_id] = entry

    def invalidate(self, client_ids: Iterable[str]) -> None:
        """Forget these clients here, and make every other process re-read them. Call after the commit."""
        client_ids = set(client_ids)
        with self._lock:
            for client_id in client_ids:
                self._entries.pop(client_id, None)
                self._claims.pop(client_id, None)
            self._origins = None
        self.versions.bump(client_ids)


def _opened(db: Session | scoped_session) -> bool:
    """Whether `db` is a session, or a scoped session whose session exists (reading it would open one)."""
    return not isinstance(db, scoped_session) or db.registry.has()


def _held(db: Session | scoped_session, client_pk: uuid.UUID) -> OAuthClient | None:
    """The session's own instance of this client, without opening a session that does not exist yet."""
    return db.identity_map.get(identity_key(OAuthClient, client_pk)) if _opened(db) else None


def _changed_in(db: Session | scoped_session) -> set[str]:
    """The client_ids the session's open transaction changed, without opening a session."""
    return db.info.get(CHANGED_CLIENTS_KEY, set()) if _opened(db) else set()


def _detached_copy(values: dict[str, Any]) -> OAuthClient:
    """A detached OAuthClient with these column values, as if loaded and its session closed."""
    client = _CLIENT_MANAGER.new_instance()
    # Set as the ORM's loader sets them (no change events), with copies of the mutable values (the
    # JSON columns: lists of strings, the jwks object), so a request cannot change the entry.
    client.__dict__.update(values)
    for key in _JSON_COLUMNS:
        value = values[key]
        if value is not None:
            client.__dict__[key] = value[:] if isinstance(value, list) else copy.deepcopy(value)
    make_transient_to_detached(client)
    return client


_CLIENT_MANAGER = inspect(OAuthClient).class_manager
_JSON_COLUMNS = tuple(attr.key for attr in inspect(OAuthClient).column_attrs if isinstance(attr.columns[0].type, JSON))


def _origin(uri: str) -> str | None:
    """scheme://host[:port] as a browser sends it in Origin (RFC 6454 §6.2), for http(s) URIs."""
    parts = urlsplit(uri)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")


def _origins(redirect_uris: Iterable[str]) -> set[str]:
    return {origin for uri in redirect_uris if (origin := _origin(uri)) is not None}


def client_origins(client: OAuthClient) -> set[str]:
    """The web origins of the client's http(s) redirect URIs: where its browser code runs (for CORS)."""
    return _origins(client.redirect_uris)


def all_cors_origins(db: Session) -> set[str]:
    """The union of every client's web origins."""
    origins: set[str] = set()
    for redirect_uris in db.scalars(select(OAuthClient.redirect_uris)):
        origins |= _origins(redirect_uris)
    return origins
