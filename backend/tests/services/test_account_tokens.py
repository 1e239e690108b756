"""services.account_tokens: password-reset and verification links (random, stored hashed, single use,
expiring, killed by a newer link or a password change), what a reset ends, and sign-up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app import errors
from app.models import AccountToken, AccountTokenPurpose, AuditEvent, RefreshToken, User, UserSession, UserStatus
from app.models.base import utcnow
from app.security import passwords
from app.security.tokens import hash_token
from app.services import account_tokens, mail, users
from app.services.actor import Actor
from app.stores.denylist import MemoryDenylist
from tests.factories import DEFAULT_PASSWORD, OAuthClientFactory, UserFactory, issue_refresh_token, session_token
from tests.conftest import make_settings
from tests.mailbox import reset_token, verification_token

NEW_PASSWORD = "a brand new passphrase"
RESET = AccountTokenPurpose.PASSWORD_RESET


@pytest.fixture
def actor():
    return Actor(user=None, ip="198.51.100.7")


@pytest.fixture
def ask(db_session, actor, settings):
    """Ask for a reset link for `email` through the service; returns the emailed token (None if no mail)."""
    def request(email: str, now=None) -> str | None:
        account_tokens.request_password_reset(db_session, actor=actor, email=email, settings=settings, now=now)
        messages = mail.queued(db_session)
        mail.drop_queued(db_session)
        db_session.commit()
        assert len(messages) <= 1
        return reset_token(messages[0].body) if messages else None
    return request


def reset(db_session, actor, settings, token, password=NEW_PASSWORD, now=None, denylist=None):
    return account_tokens.reset_password(db_session, actor=actor, token=token, new_password=password,
                                         settings=settings, denylist=denylist or MemoryDenylist(), now=now)


def test_request_password_reset_emails_a_link_stored_only_as_sha256(db_session, user, ask, settings):
    token = ask(user.email.upper())

    row = db_session.scalars(select(AccountToken)).one()
    assert row.token_hash == hash_token(token) and token not in (row.token_hash, row.email)
    assert (row.user_id, row.purpose, row.used_at) == (user.id, RESET, None)
    assert row.expires_at - row.created_at == timedelta(seconds=settings.PASSWORD_RESET_TTL_SECONDS) \
        == timedelta(minutes=30)
    assert len(token) >= 43  # 256 bits, URL-safe


@pytest.mark.parametrize("status", [None, UserStatus.SUSPENDED], ids=["unknown", "suspended"])
def test_request_password_reset_for_no_active_account_sends_nothing_and_audits(db_session, ask, status):
    email = "nobody@example.com"
    if status:
        UserFactory(email=email, status=status)

    assert ask(email) is None

    assert db_session.scalars(select(AccountToken)).all() == []
    event = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.password_reset_requested")).one()
    assert event.result == "failure"


def test_reset_password_sets_the_password_and_signs_nothing_in(db_session, user, ask, actor, settings):
    sessions_before = db_session.scalars(select(UserSession)).all()

    reset(db_session, actor, settings, ask(user.email))
    db_session.commit()

    assert passwords.verify_password(NEW_PASSWORD, user.password_hash)
    assert not passwords.verify_password(DEFAULT_PASSWORD, user.password_hash)
    assert db_session.scalars(select(UserSession)).all() == sessions_before == []
    event = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "user.password_reset")).one()
    assert event.target_id == str(user.id)


def test_reset_password_ends_every_session_and_revokes_every_refresh_token_family(db_session, user, ask, actor,
                                                                                settings):
    session_token(user), session_token(user)
    client = OAuthClientFactory()
    families = [issue_refresh_token(db_session, client=client, user=user, organization=None,
                                    access_token_jti=f"jti-{n}") for n in range(2)]
    denylist = MemoryDenylist()

    reset(db_session, actor, settings, ask(user.email), denylist=denylist)
    db_session.commit()

    assert all(s.ended_at is not None for s in db_session.scalars(select(UserSession)))
    assert all(row.revoked_at is not None for row in db_session.scalars(select(RefreshToken)))
    assert [denylist.is_denied(row.access_token_jti) for row in families] == [True, True]


def test_reset_password_twice_with_one_link_is_refused(db_session, user, ask, actor, settings):
    token = ask(user.email)
    reset(db_session, actor, settings, token)
    db_session.commit()

    with pytest.raises(account_tokens.LinkUnusable):
        reset(db_session, actor, settings, token, password="yet another passphrase")


def test_reset_password_after_thirty_minutes_is_refused(db_session, user, ask, actor, settings):
    issued_at = utcnow()
    token = ask(user.email, now=issued_at)

    with pytest.raises(account_tokens.LinkUnusable):
        reset(db_session, actor, settings, token, now=issued_at + timedelta(minutes=30))


def test_reset_password_with_a_superseded_link_is_refused(db_session, user, ask, actor, settings):
    older = ask(user.email)
    newer = ask(user.email)

    with pytest.raises(account_tokens.LinkUnusable):
        reset(db_session, actor, settings, older)
    reset(db_session, actor, settings, newer)


def test_change_password_kills_unused_reset_links(db_session, user, ask, actor, settings):
    token = ask(user.email)
    users.change_password(db_session, actor=actor.as_user(user), user=user, current_password=DEFAULT_PASSWORD,
                          new_password="changed the usual way", settings=settings)
    db_session.commit()

    with pytest.raises(account_tokens.LinkUnusable):
        reset(db_session, actor, settings, token)


def test_reset_password_with_a_weak_password_keeps_the_link_usable(db_session, user, ask, actor, settings):
    token = ask(user.email)

    with pytest.raises(errors.ValidationFailed) as raised:
        reset(db_session, actor, settings, token, password="short")
    db_session.rollback()

    assert "password" in raised.value.details
    reset(db_session, actor, settings, token)


def test_reset_password_of_an_account_suspended_since_is_refused(db_session, user, ask, actor, settings):
    token = ask(user.email)
    user.status = UserStatus.SUSPENDED
    db_session.commit()

    with pytest.raises(errors.AccountSuspended):
        reset(db_session, actor, settings, token)


def test_reset_password_gives_a_federated_only_account_a_password(db_session, ask, actor, settings):
    federated = UserFactory(password_hash=None)

    reset(db_session, actor, settings, ask(federated.email))

    assert passwords.verify_password(NEW_PASSWORD, federated.password_hash)


def test_reset_password_marks_the_address_verified(db_session, ask, actor, settings):
    unverified = UserFactory(email_verified=False)

    reset(db_session, actor, settings, ask(unverified.email))

    assert unverified.email_verified is True


def test_find_live_link_claims_nothing(db_session, user, ask):
    token = ask(user.email)

    assert account_tokens.find_live_link(db_session, purpose=RESET, token=token) is not None
    assert account_tokens.find_live_link(db_session, purpose=RESET, token=token).used_at is None
    assert account_tokens.find_live_link(db_session, purpose=AccountTokenPurpose.EMAIL_VERIFICATION,
                                         token=token) is None


# --- sign-up and email verification ---

VERIFY = AccountTokenPurpose.EMAIL_VERIFICATION


def sign_up(db_session, actor, settings, email="new@example.com") -> tuple[User, str]:
    """Sign up through the service; returns the user and the emailed verification token."""
    user = account_tokens.sign_up(db_session, actor=actor, email=email, password=NEW_PASSWORD, name="New",
                                  settings=settings)
    [message] = mail.queued(db_session)
    mail.drop_queued(db_session)
    db_session.commit()
    return user, verification_token(message.body)


def test_sign_up_creates_an_unverified_account_and_emails_a_48_hour_link(db_session, actor, settings):
    user, token = sign_up(db_session, actor, settings)

    row = db_session.scalars(select(AccountToken)).one()
    assert (row.purpose, row.token_hash, row.email) == (VERIFY, hash_token(token), user.email)
    assert row.expires_at - row.created_at == timedelta(hours=48)
    assert user.email_verified is False


def test_sign_up_when_registration_is_closed_is_refused(db_session, actor, database_url):
    with pytest.raises(errors.RegistrationClosed):
        account_tokens.sign_up(db_session, actor=actor, email="new@example.com", password=NEW_PASSWORD, name="",
                               settings=make_settings(database_url, REGISTRATION_OPEN=False))

    assert db_session.scalars(select(User)).all() == []


def test_verify_email_marks_the_address_verified_once(db_session, actor, settings):
    user, token = sign_up(db_session, actor, settings)

    account_tokens.verify_email(db_session, actor=actor, token=token)
    db_session.commit()

    assert user.email_verified is True
    with pytest.raises(account_tokens.LinkUnusable):
        account_tokens.verify_email(db_session, actor=actor, token=token)


def test_verify_email_after_48_hours_is_refused(db_session, actor, settings):
    _, token = sign_up(db_session, actor, settings)

    with pytest.raises(account_tokens.LinkUnusable):
        account_tokens.verify_email(db_session, actor=actor, token=token, now=utcnow() + timedelta(hours=48))


def test_verify_email_after_the_address_changed_is_refused(db_session, actor, settings):
    user, token = sign_up(db_session, actor, settings)
    user.email = "changed@example.com"
    db_session.commit()

    with pytest.raises(account_tokens.LinkUnusable):
        account_tokens.verify_email(db_session, actor=actor, token=token)


def test_reset_token_does_not_verify_an_email(db_session, user, ask, actor):
    with pytest.raises(account_tokens.LinkUnusable):
        account_tokens.verify_email(db_session, actor=actor, token=ask(user.email))


def test_resend_verification_kills_the_earlier_link(db_session, actor, settings):
    user, older = sign_up(db_session, actor, settings)

    account_tokens.resend_verification(db_session, actor=actor, email=user.email, settings=settings)
    [message] = mail.queued(db_session)
    mail.drop_queued(db_session)

    with pytest.raises(account_tokens.LinkUnusable):
        account_tokens.verify_email(db_session, actor=actor, token=older)
    account_tokens.verify_email(db_session, actor=actor, token=verification_token(message.body))


@pytest.mark.parametrize("email_verified", [True, None], ids=["verified", "unknown"])
def test_resend_verification_sends_nothing_for_a_verified_or_unknown_address(db_session, actor, settings,
                                                                           email_verified):
    if email_verified:
        UserFactory(email="someone@example.com", email_verified=True)

    account_tokens.resend_verification(db_session, actor=actor, email="someone@example.com", settings=settings)

    assert mail.queued(db_session) == []
