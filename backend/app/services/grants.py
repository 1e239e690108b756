"""What an authorization grant leaves behind: codes and refresh-token families.

Codes and refresh tokens are stored as SHA-256 hashes. Both are single-use:
redeeming a code twice (RFC 6749 §4.1.2) or presenting a rotated refresh
token (RFC 9700 §4.14.2) revokes everything the grant issued. Claims of a
code or a refresh token are conditional UPDATEs, so of two concurrent
requests exactly one wins.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session, joinedload

from app.models import AuthorizationCode, Consent, OAuthClient, RefreshToken, User
from app.models.base import utcnow
from app.security.tokens import hash_token, new_token
from app.services import audit, revocations
from app.services.actor import Actor
from app.stores.denylist import TokenDenylist


# The statements every sign-in and refresh runs, built once: building a statement and its cache key costs about as much
# CPU as executing it. Values come as bound parameters. A code is written once and never changed through
# the ORM, so it is inserted without a unit of work: every column with a default is given but its id.
_INSERT_CODE = insert(AuthorizationCode.__table__)
_CODE_BY_HASH = (select(AuthorizationCode).options(joinedload(AuthorizationCode.user))
                 .where(AuthorizationCode.code_hash == bindparam("code_hash")))
_CLAIM_CODE = (update(AuthorizationCode)
               .where(AuthorizationCode.id == bindparam("code_id"), AuthorizationCode.redeemed_at.is_(None))
               .values(redeemed_at=bindparam("redeemed_at"), family_id=bindparam("family_id"),
                       access_token_jti=bindparam("access_token_jti"),
                       access_token_expires_at=bindparam("access_token_expires_at"))
               .execution_options(synchronize_session=False))
_REFRESH_TOKEN_BY_HASH = select(RefreshToken).where(RefreshToken.token_hash == bindparam("token_hash"))
_CLAIM_ROTATION = (update(RefreshToken)
                   .where(RefreshToken.id == bindparam("token_id"), RefreshToken.rotated_at.is_(None),
                          RefreshToken.revoked_at.is_(None))
                   .values(rotated_at=bindparam("rotated_at"), successor_ciphertext=bindparam("successor_ciphertext"))
                   .execution_options(synchronize_session=False))
_NONCE_OF_CLIENT = (select(AuthorizationCode.id)
                    .join(OAuthClient, OAuthClient.id == AuthorizationCode.client_pk)
                    .where(OAuthClient.client_id == bindparam("client_id"),
                           AuthorizationCode.nonce == bindparam("nonce"))
                    .limit(1))


def new_authorization_code() -> str:
    return new_token()


def store_authorization_code(db: Session, *, code: str, client: OAuthClient, user: User, redirect_uri: str | None,
                             scope: str, nonce: str | None, code_challenge: str | None,
                             code_challenge_method: str | None, auth_time: datetime, amr: list[str], lifetime: int,
                             organization_id: uuid.UUID | None = None, identity_provider_id: uuid.UUID | None = None,
                             now: datetime | None = None) -> None:
    """Store a new authorization code, hashed; the clear value goes only to the client.

    `organization_id` is the organization the authorization happened in (if any); the
    tokens the code is redeemed for, and every refresh of them, carry it.
    """
    now = now or utcnow()
    db.execute(_INSERT_CODE, {
        "code_hash": hash_token(code), "client_pk": client.id, "user_id": user.id, "redirect_uri": redirect_uri,
        "scope": scope, "nonce": nonce, "code_challenge": code_challenge,
        "code_challenge_method": code_challenge_method, "auth_time": auth_time, "amr": amr,
        "organization_id": organization_id, "identity_provider_id": identity_provider_id, "created_at": now,
        "expires_at": now + timedelta(seconds=lifetime),
    })


def find_authorization_code(db: Session, *, actor: Actor, code: str, client: OAuthClient, denylist: TokenDenylist,
                            now: datetime | None = None) -> AuthorizationCode | None:
    """The code if this client may redeem it now; None otherwise.

    A code that was already redeemed is evidence of theft or replay: what it
    issued is revoked (RFC 6749 §4.1.2) and the attempt audited.
    """
    now = now or utcnow()
    # With its user, whom redeeming it always needs.
    row = db.scalar(_CODE_BY_HASH, {"code_hash": hash_token(code)})
    if row is None or row.client_pk != client.id:
        return None
    if row.redeemed_at is not None:
        revoked = revoke_family(db, family_id=row.family_id, denylist=denylist, now=now) if row.family_id else 0
        if row.access_token_jti and row.access_token_expires_at:
            revocations.deny_token(db, denylist=denylist, key=row.access_token_jti,
                                   expires_at=int(row.access_token_expires_at.timestamp()))
        audit.record_event(db, actor=actor, action="oauth.code_reused", result="failure", target_type="client",
                           target_id=client.client_id, details={"refresh_tokens_revoked": revoked})
        return None
    if row.expires_at <= now:
        return None
    return row


def claim_authorization_code(db: Session, *, code: AuthorizationCode, family_id: uuid.UUID | None,
                             access_token_jti: str, access_token_expires_at: datetime,
                             now: datetime | None = None) -> bool:
    """Mark the code redeemed, recording what it issued. False if another request redeemed it first."""
    claimed = db.execute(_CLAIM_CODE, {"code_id": code.id, "redeemed_at": now or utcnow(), "family_id": family_id,
                                       "access_token_jti": access_token_jti,
                                       "access_token_expires_at": access_token_expires_at})
    return claimed.rowcount == 1


def new_refresh_token() -> str:
    return new_token()


def store_refresh_token(db: Session, *, token: str, family_id: uuid.UUID, client: OAuthClient, user: User,
                        scope: str, auth_time: datetime, amr: list[str], lifetime: int,
                        access_token_jti: str | None, access_token_expires_at: datetime | None,
                        organization_id: uuid.UUID | None = None, now: datetime | None = None) -> RefreshToken:
    """Store one link of a refresh-token family, hashed. `organization_id` is the grant's
    organization context: the code's for the first link, the predecessor's for every rotation."""
    now = now or utcnow()
    row = RefreshToken(
        token_hash=hash_token(token), family_id=family_id, client_pk=client.id, user_id=user.id, scope=scope,
        organization_id=organization_id, auth_time=auth_time, amr=amr, created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
        access_token_jti=access_token_jti, access_token_expires_at=access_token_expires_at,
    )
    db.add(row)
    return row


def record_family_access_token(db: Session, *, row: RefreshToken, access_token_jti: str,
                               access_token_expires_at: datetime, now: datetime | None = None) -> None:
    """Record an access token issued to `row`'s family without a refresh token of its own (a
    retry within the grace window), so that `revoke_family` denies it too.

    The record is a link of the family whose token is random and discarded and which is
    revoked from the start: it can never be redeemed, and it counts as neither rotated
    (for the grace window) nor live (for revocation counts). It lives as long as the
    access token it records.
    """
    now = now or utcnow()
    db.add(RefreshToken(
        token_hash=hash_token(new_token()), family_id=row.family_id, client_pk=row.client_pk, user_id=row.user_id,
        scope=row.scope, organization_id=row.organization_id, auth_time=row.auth_time, amr=row.amr, created_at=now,
        expires_at=access_token_expires_at, revoked_at=now,
        access_token_jti=access_token_jti, access_token_expires_at=access_token_expires_at,
    ))


def find_refresh_token(db: Session, *, token: str) -> RefreshToken | None:
    return db.scalar(_REFRESH_TOKEN_BY_HASH, {"token_hash": hash_token(token)})


def find_revocable_refresh_token(db: Session, *, token: str) -> RefreshToken | None:
    """The refresh token if revoking it can still end its family (RFC 7009 §2.1); None otherwise.

    Any unrevoked link counts, rotated or not: a rotated token may still be redeemable (the
    grace window) and its family still holds live tokens, all of which revoking it must end.
    """
    return db.scalar(select(RefreshToken).where(RefreshToken.token_hash == hash_token(token),
                                                RefreshToken.revoked_at.is_(None)))


def find_active_refresh_token(db: Session, *, token: str, now: datetime | None = None) -> RefreshToken | None:
    """The refresh token if it is active for introspection (RFC 7662 §2.2): neither revoked nor
    expired, and not yet rotated (its successor is the family's active token); None otherwise."""
    row = find_refresh_token(db, token=token)
    return row if row is not None and is_usable(row, now or utcnow()) and row.rotated_at is None else None


def is_usable(row: RefreshToken, now: datetime) -> bool:
    """Neither revoked nor expired (it may have been rotated)."""
    return row.revoked_at is None and row.expires_at > now


def in_grace_window(db: Session, *, row: RefreshToken, grace_seconds: int, now: datetime) -> bool:
    """Whether a rotated token may be presented again: only the immediately
    previous token of its family, only within the grace window."""
    if grace_seconds <= 0 or row.rotated_at is None or row.successor_ciphertext is None:
        return False
    if now - row.rotated_at > timedelta(seconds=grace_seconds):
        return False
    newer = db.scalar(select(RefreshToken).where(RefreshToken.family_id == row.family_id,
                                                 RefreshToken.created_at > row.created_at,
                                                 RefreshToken.rotated_at.is_not(None)))
    return newer is None


def claim_rotation(db: Session, *, row: RefreshToken, successor_ciphertext: str | None,
                   now: datetime | None = None) -> bool:
    """Mark the token rotated. False if another request rotated it first."""
    claimed = db.execute(_CLAIM_ROTATION, {"token_id": row.id, "rotated_at": now or utcnow(),
                                           "successor_ciphertext": successor_ciphertext})
    return claimed.rowcount == 1


def revoke_family(db: Session, *, family_id: uuid.UUID, denylist: TokenDenylist,
                  now: datetime | None = None) -> int:
    """Revoke every refresh token of a family and deny the access tokens issued with them.

    Returns how many refresh tokens were still unrevoked.
    """
    now = now or utcnow()
    rows = list(db.scalars(select(RefreshToken).where(RefreshToken.family_id == family_id)))
    for row in rows:
        if row.access_token_jti and row.access_token_expires_at and row.access_token_expires_at > now:
            revocations.deny_token(db, denylist=denylist, key=row.access_token_jti,
                                   expires_at=int(row.access_token_expires_at.timestamp()))
    revoked = db.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return revoked.rowcount


def report_refresh_reuse(db: Session, *, actor: Actor, row: RefreshToken, denylist: TokenDenylist,
                         now: datetime | None = None) -> int:
    """A rotated refresh token came back outside the grace window: revoke its family and audit it."""
    revoked = revoke_family(db, family_id=row.family_id, denylist=denylist, now=now)
    audit.record_event(db, actor=actor, action="oauth.refresh_token_reused", result="failure",
                       target_type="refresh_token_family", target_id=row.family_id,
                       details={"client_id": row.client.client_id, "refresh_tokens_revoked": revoked})
    return revoked


def nonce_used(db: Session, *, client_id: str, nonce: str) -> bool:
    """Whether this client already sent this nonce in an authorization request."""
    return db.scalar(_NONCE_OF_CLIENT, {"client_id": client_id, "nonce": nonce}) is not None


def revoke_user_grants_in_organization(db: Session, *, organization_id: uuid.UUID, user_id: uuid.UUID,
                                       denylist: TokenDenylist, now: datetime | None = None) -> int:
    """Revoke what the user was issued in the organization: every refresh-token family (with the
    access tokens issued alongside), the access tokens issued from codes without a refresh
    token, which would otherwise stay valid until they expire, and the consents given in it (if
    the user joins again, no client may skip asking them).

    Returns how many refresh tokens were still live.
    """
    revoked = _revoke_issued(db, user_id=user_id, denylist=denylist, now=now or utcnow(),
                             organization_id=organization_id)
    db.execute(delete(Consent).where(Consent.organization_id == organization_id, Consent.user_id == user_id))
    return revoked


def revoke_user_grants(db: Session, *, user_id: uuid.UUID, denylist: TokenDenylist,
                       now: datetime | None = None) -> int:
    """Revoke every refresh-token family of the user, in every organization and none, and deny the
    live access tokens issued with them or from codes (a password reset: whoever held them may
    have been the one who knew the old password). Consents stay: they are the user's choices.

    Returns how many refresh tokens were still live.
    """
    return _revoke_issued(db, user_id=user_id, denylist=denylist, now=now or utcnow())


def _revoke_issued(db: Session, *, user_id: uuid.UUID, denylist: TokenDenylist, now: datetime,
                   organization_id: uuid.UUID | None = None) -> int:
    in_scope = (lambda model: [model.user_id == user_id] if organization_id is None
                else [model.user_id == user_id, model.organization_id == organization_id])
    family_ids = list(db.scalars(select(RefreshToken.family_id).distinct().where(*in_scope(RefreshToken))))
    revoked = sum(revoke_family(db, family_id=family_id, denylist=denylist, now=now) for family_id in family_ids)
    issued_from_codes = select(AuthorizationCode.access_token_jti, AuthorizationCode.access_token_expires_at).where(
        *in_scope(AuthorizationCode), AuthorizationCode.access_token_expires_at > now)
    for jti, expires_at in db.execute(issued_from_codes):
        revocations.deny_token(db, denylist=denylist, key=jti, expires_at=int(expires_at.timestamp()))
    return revoked
