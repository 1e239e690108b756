"""Consent: which scopes a user allowed a client to receive, in one organization or in none.

A consent is kept per organization context (OIDC Core §3.1.2.4): allowing a client
`org:admin` in one organization allows nothing in another, nor outside any.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Consent, OAuthClient, User
from app.services import audit
from app.services.actor import Actor


def get_consent(db: Session, *, user: User, client: OAuthClient, organization_id: uuid.UUID | None) -> Consent | None:
    """The user's consent to `client` in exactly this organization (None: given with no organization), or None."""
    # SQLAlchemy compiles `== None` to IS NULL: "no organization" is looked up as such.
    return db.scalar(select(Consent).where(Consent.user_id == user.id, Consent.client_pk == client.id,
                                           Consent.organization_id == organization_id))


def has_consent(db: Session, *, user: User, client: OAuthClient, scopes: list[str],
                organization_id: uuid.UUID | None) -> bool:
    """True when the user already allowed every one of `scopes` to this client in this organization context."""
    consent = get_consent(db, user=user, client=client, organization_id=organization_id)
    return consent is not None and set(scopes) <= set(consent.scopes)


def consent_required(db: Session, *, user: User, client: OAuthClient, scopes: list[str],
                     organization_id: uuid.UUID | None, prompt_consent: bool) -> bool:
    """Whether the user must be asked before `client` receives `scopes` in `organization_id` (None: in none).

    First-party clients never ask; otherwise ask when prompt=consent was sent
    (OIDC Core §3.1.2.1) or when no earlier consent in the same organization
    context covers every scope.
    """
    if client.first_party:
        return False
    return prompt_consent or not has_consent(db, user=user, client=client, scopes=scopes,
                                             organization_id=organization_id)


def grant_consent(db: Session, *, actor: Actor, user: User, client: OAuthClient, scopes: list[str],
                  organization_id: uuid.UUID | None) -> Consent:
    """Record that the user allowed `scopes` in `organization_id` (None: in none), adding to what
    they allowed before in that same context."""
    # The existing row is updated, never duplicated; for "no organization" the partial unique
    # index uq_consents_user_id_client_pk_no_organization backs this up (NULLs are distinct).
    consent = get_consent(db, user=user, client=client, organization_id=organization_id)
    if consent is None:
        consent = Consent(user_id=user.id, client_pk=client.id, organization_id=organization_id,
                          scopes=sorted(set(scopes)))
        db.add(consent)
    else:
        consent.scopes = sorted(set(consent.scopes) | set(scopes))
    audit.record_event(db, actor=actor, action="oauth.consent_granted", target_type="client",
                       target_id=client.client_id, organization_id=organization_id,
                       details={"scopes": sorted(set(scopes))})
    return consent
