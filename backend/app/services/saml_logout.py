"""SAML single logout (SAML Profiles §4.4) as it touches our sessions: a session signed in through a SAML
connection keeps the NameID and SessionIndex the assertion named; an IdP's LogoutRequest ends the sessions
it names; our own logout of such a session asks the IdP to end its session too, when the connection has an
SLO URL. The messages themselves are app.federation.saml's; the pending LogoutRequest is kept like a pending
AuthnRequest (services.identities.remember_saml_request, under its RelayState).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import IdentityProvider, SessionEndReason, UserSession
from app.models.base import utcnow
from app.models.federation import SAMLSettings
from app.services import audit
from app.services.actor import Actor


def remember_saml_subject(session: UserSession, *, name_id: str, name_id_format: str | None,
                          session_index: str | None) -> None:
    """Keep with a session started through a SAML connection whom the IdP's LogoutRequest will name."""
    session.saml_name_id = name_id
    session.saml_name_id_format = name_id_format
    session.saml_session_index = session_index


def slo_connection(db: Session, session: UserSession | None) -> IdentityProvider | None:
    """The enabled SAML connection with an SLO URL that this live session was signed in through, and that
    therefore is told of its logout (Profiles §4.4.3.1); None otherwise."""
    if session is None or session.saml_name_id is None or session.identity_provider_id is None:
        return None
    provider = db.get(IdentityProvider, session.identity_provider_id)
    if provider is None or not provider.enabled or not isinstance(provider.kind_settings, SAMLSettings):
        return None
    return provider if provider.kind_settings.idp_slo_url else None


def end_idp_sessions(db: Session, *, actor: Actor, provider: IdentityProvider, name_id: str, session_indexes: list[str],
                     now: datetime | None = None) -> int:
    """End the live sessions signed in through `provider` as `name_id` (Profiles §4.4.4.1), only those of the
    given IdP session indexes when there are any (SAML Core §3.7.1). Returns how many ended; audited either way.
    """
    stmt = update(UserSession).where(UserSession.identity_provider_id == provider.id,
                                     UserSession.saml_name_id == name_id, UserSession.ended_at.is_(None))
    if session_indexes:
        stmt = stmt.where(UserSession.saml_session_index.in_(session_indexes))
    ended = db.execute(stmt.values(ended_at=now or utcnow(), end_reason=SessionEndReason.IDP_LOGOUT)
                       .execution_options(synchronize_session=False)).rowcount
    audit.record_event(db, actor=actor, organization_id=provider.organization_id, action="saml.logout",
                       target_type="identity_provider", target_id=provider.id, details={"sessions_ended": ended})
    return ended
