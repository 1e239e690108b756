"""Consent: which scopes a user allowed a client to receive."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Consent, OAuthClient, User
from app.services import audit
from app.services.actor import Actor


def has_consent(db: Session, *, user: User, client: OAuthClient, scopes: list[str]) -> bool:
    """True when the user already allowed every one of `scopes` to this client."""
    consent = db.scalar(select(Consent).where(Consent.user_id == user.id, Consent.client_pk == client.id))
    return consent is not None and set(scopes) <= set(consent.scopes)


def consent_required(db: Session, *, user: User, client: OAuthClient, scopes: list[str],
                     prompt_consent: bool) -> bool:
    """Whether the user must be asked before `client` receives `scopes`.

    First-party clients never ask; otherwise ask when prompt=consent was sent
    (OIDC Core §3.1.2.1) or when an earlier consent does not cover every scope.
    """
    if client.first_party:
        return False
    return prompt_consent or not has_consent(db, user=user, client=client, scopes=scopes)


def grant_consent(db: Session, *, actor: Actor, user: User, client: OAuthClient, scopes: list[str]) -> Consent:
    """Record that the user allowed `scopes`, adding to what they allowed before."""
    consent = db.scalar(select(Consent).where(Consent.user_id == user.id, Consent.client_pk == client.id))
    if consent is None:
        consent = Consent(user_id=user.id, client_pk=client.id, scopes=sorted(set(scopes)))
        db.add(consent)
    else:
        consent.scopes = sorted(set(consent.scopes) | set(scopes))
    audit.record_event(db, actor=actor, action="oauth.consent_granted", target_type="client",
                       target_id=client.client_id, details={"scopes": sorted(set(scopes))})
    return consent
