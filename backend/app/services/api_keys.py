"""Personal API keys: a user's own credential for the management API, limited to scopes.

A key acts as its user, within its scopes (security/api_keys.py holds the format and the scope
catalogue). Creating one takes the account's password, as a password change does; a key never
creates another. A key works only while it is unrevoked, unexpired and its user active, so a
suspension stops every key at once, and deleting the user deletes them (ON DELETE CASCADE).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from app import errors
from app.config import Settings
from app.models import ApiKey, User
from app.models.base import utcnow
from app.security import api_keys as key_format
from app.security.tokens import token_matches
from app.services import audit, domains, users
from app.services.actor import Actor

# How far a key's recorded last use may lag behind its real one: a run of requests costs one
# UPDATE a minute, not one each.
USE_RECORDING_INTERVAL = timedelta(minutes=1)
MAX_EXPIRY = timedelta(days=key_format.MAX_EXPIRY_DAYS)


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    # The key itself: in the create response only, never stored.
    key: str


def list_keys(db: Session, *, user: User) -> list[ApiKey]:
    """The user's unrevoked keys (expired ones too, until revoked), newest first."""
    return list(db.scalars(select(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
                           .order_by(ApiKey.created_at.desc(), ApiKey.id)))


def create_key(db: Session, *, actor: Actor, user: User, password: str, name: str, scopes: list[str],
               expires_at: datetime | None, settings: Settings, now: datetime | None = None) -> IssuedApiKey:
    """Create a key for `user` after checking their password; returns it with the key itself.

    Raises:
        InvalidCredentials, AccountLocked, SignInThrottled: as users.require_current_password (an
            account without a password sets one through the reset flow first).
        ValidationFailed: `expires_at` is not in the future, or further than MAX_EXPIRY.
        SSORequired: the user's email domain enforces single sign-on (domains.sign_in_refusal): a key is a
            credential of its own, a way around the organization's IdP; whatever the password.
    """
    now = now or utcnow()
    if sso_required := domains.sign_in_refusal(db, email=user.email, user=user):
        raise sso_required
    users.require_current_password(db, actor=actor, user=user, password=password, settings=settings)
    if expires_at is not None and not now < expires_at <= now + MAX_EXPIRY:
        raise errors.ValidationFailed(details={"expires_at": [f"Must be in the future, within {MAX_EXPIRY.days} "
                                                              "days."]})
    generated = key_format.generate_key()
    api_key = ApiKey(user_id=user.id, user=user, name=name, prefix=generated.prefix, key_hash=generated.key_hash,
                     scopes=sorted(set(scopes)), created_at=now, expires_at=expires_at)
    db.add(api_key)
    db.flush()  # assign api_key.id for the audit event
    audit.record_event(db, actor=actor, action="api_key.created", target_type="api_key", target_id=api_key.id,
                       details={"name": name, "scopes": api_key.scopes,
                                "expires_at": expires_at.isoformat() if expires_at else None})
    return IssuedApiKey(api_key=api_key, key=generated.key)


def revoke_key(db: Session, *, actor: Actor, user: User, key_id: uuid.UUID, now: datetime | None = None) -> ApiKey:
    """Revoke one of the user's own keys; it stops working at once.

    Raises:
        NotFound: no such key, another user's, or already revoked (indistinguishable).
    """
    api_key = db.get(ApiKey, key_id)
    if api_key is None or api_key.user_id != user.id or api_key.revoked_at is not None:
        raise errors.NotFound("API key not found.")
    api_key.revoked_at = now or utcnow()
    audit.record_event(db, actor=actor, action="api_key.revoked", target_type="api_key", target_id=api_key.id)
    return api_key


def revoke_all_for_user(db: Session, *, actor: Actor, user_id: uuid.UUID, now: datetime | None = None) -> int:
    """Revoke every unrevoked key of a user (for a suspension, say). Returns how many; audits them
    as one api_key.revoked_all event when there were any."""
    revoked = db.execute(update(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                         .values(revoked_at=now or utcnow()).execution_options(synchronize_session=False)).rowcount
    if revoked:
        audit.record_event(db, actor=actor, action="api_key.revoked_all", target_type="user", target_id=user_id,
                           details={"keys_revoked": revoked})
    return revoked


def authenticate_key(db: Session, *, actor: Actor, presented: str, now: datetime | None = None) -> ApiKey:
    """The key `presented` (an X-API-Key header) proves, its last use recorded if due (the key is
    then modified in `db`; the caller commits it).

    The row is found by the key's public prefix and the whole key checked against its stored
    SHA-256 in constant time. A use after expiry is audited (api_key.used_after_expiry) before
    the error is raised, as is every sign-in (audit.SIGN_IN_ACTION, method api_key): the caller commits
    them.

    Raises:
        AuthenticationRequired: malformed or unknown key, or revoked, expired, or its user not active, or
            the user's email domain now enforces single sign-on (domains.sign_in_refusal; a key made
            before then is refused too).
    """
    now = now or utcnow()
    prefix = key_format.key_prefix(presented)
    api_key = None if prefix is None else db.scalar(
        select(ApiKey).options(joinedload(ApiKey.user)).where(ApiKey.prefix == prefix))
    if api_key is None:
        raise errors.AuthenticationRequired("The API key is invalid.")
    if not token_matches(presented, api_key.key_hash):
        _record_sign_in(db, actor, api_key, reason="bad_api_key")
        raise errors.AuthenticationRequired("The API key is invalid.")
    if api_key.revoked_at is not None:
        _record_sign_in(db, actor, api_key, reason="api_key_revoked")
        raise errors.AuthenticationRequired("The API key has been revoked.")
    if api_key.is_expired(now):
        audit.record_event(db, actor=actor.as_user(api_key.user), action="api_key.used_after_expiry",
                           result="failure", target_type="api_key", target_id=api_key.id)
        _record_sign_in(db, actor, api_key, reason="api_key_expired")
        raise errors.AuthenticationRequired("The API key has expired.")
    if not api_key.user.is_active:
        _record_sign_in(db, actor, api_key, reason="suspended")
        raise errors.AuthenticationRequired("The account is not active.")
    if sso_required := domains.sign_in_refusal(db, email=api_key.user.email, user=api_key.user):
        _record_sign_in(db, actor, api_key, reason="sso_required")
        raise errors.AuthenticationRequired(sso_required.message)
    if api_key.last_used_at is None or now - api_key.last_used_at >= USE_RECORDING_INTERVAL:
        api_key.last_used_at, api_key.last_used_ip = now, actor.ip
        _record_sign_in(db, actor, api_key)
    return api_key


def _record_sign_in(db: Session, actor: Actor, api_key: ApiKey, *, reason: str | None = None) -> None:
    """The key's use, or a refused presentation of it, in its user's login history (an auth.login event,
    method api_key): a use as often as last use is recorded, every refusal."""
    details = {"method": "api_key", "api_key_id": str(api_key.id)} | ({"reason": reason} if reason else {})
    audit.record_event(db, actor=actor.as_user(api_key.user), action=audit.SIGN_IN_ACTION,
                       result="failure" if reason else "success", target_type="api_key", target_id=api_key.id,
                       details=details)


def require_scope(api_key: ApiKey, scope: str | None) -> None:
    """Let the key through an endpoint that needs `scope`; None is an endpoint no key may call
    (a session's only: among them every one that asks for the password).

    Raises:
        PermissionDenied: the key lacks `scope` (named in the message and details), or no key may call it.
    """
    if scope is None:
        raise errors.PermissionDenied("API keys cannot call this endpoint; use a session token "
                                      "(Authorization: Bearer).", details={"required_scope": None})
    if scope not in api_key.scopes:
        raise errors.PermissionDenied(f"This API key lacks the scope {scope}.", details={"required_scope": scope})
