"""`flask users create`, `flask sessions cleanup` and `flask seed`, run as an operator would."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import bcrypt
import pytest
from sqlalchemy import func, select

from app.cli.seed import DEMO_EMAIL
from app.models import (AuditEvent, LoginThrottle, Membership, OAuthClient, Organization, RevokedToken,
                        SessionEndReason, User,
                        UserSession)
from app.models.base import utcnow
from app.services.sessions import end_session, start_session
from tests import factories

PASSWORD = "Lantern-Hedgehog-Orbit-2291"


def _users(db_session) -> list[User]:
    return list(db_session.scalars(select(User)))


# --- flask users create --------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "is_admin"), [((), False), (("--admin",), True)], ids=["user", "admin"])
def test_users_create_prints_user_json(run, flags, is_admin):
    result = run("users", "create", "--email", "Ada.Lovelace@Example.COM", "--password", PASSWORD, *flags)

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert uuid.UUID(printed["id"])
    assert printed["email"] == "ada.lovelace@example.com"
    assert printed["is_platform_admin"] is is_admin
    assert "password" not in result.stdout.lower() and PASSWORD not in result.output


@pytest.mark.parametrize(("flags", "is_admin"), [((), False), (("--admin",), True)], ids=["user", "admin"])
def test_users_create_stores_user_with_bcrypt_hash(run, db_session, settings, flags, is_admin):
    result = run("users", "create", "--email", "Ada.Lovelace@Example.COM", "--password", PASSWORD,
                 "--name", "Ada", *flags)

    [user] = _users(db_session)
    assert str(user.id) == json.loads(result.stdout)["id"]
    assert (user.email, user.name, user.is_platform_admin, user.status) == (
        "ada.lovelace@example.com", "Ada", is_admin, "active")
    assert user.password_hash.startswith(f"$2b${settings.BCRYPT_ROUNDS:02d}$")
    assert bcrypt.checkpw(PASSWORD.encode(), user.password_hash.encode())


@pytest.mark.parametrize(("password", "reason"), [
    ("short", "at least 8 characters"),
    ("password123", "too common"),
    ("x" * 73, "at most 72 bytes"),
], ids=["too-short", "common", "too-long"])
def test_users_create_with_weak_password_fails_and_creates_nothing(run, db_session, password, reason):
    result = run("users", "create", "--email", "weak@example.com", "--password", password)

    assert result.exit_code != 0
    assert "password" in result.output and reason in result.output
    assert result.stdout == ""
    assert _users(db_session) == []


@pytest.mark.parametrize("email", ["taken@example.com", "TAKEN@Example.com", "  taken@example.com "])
def test_users_create_with_existing_email_fails_and_creates_nothing(run, db_session, email):
    existing = factories.UserFactory(email="taken@example.com")
    existing_id = existing.id

    result = run("users", "create", "--email", email, "--password", PASSWORD)

    assert result.exit_code != 0
    assert "already exists" in result.output
    assert result.stdout == ""
    assert [u.id for u in _users(db_session)] == [existing_id]


@pytest.mark.parametrize("missing", ["--email", "--password"])
def test_users_create_without_required_option_fails_and_creates_nothing(run, db_session, missing):
    args = {"--email": "someone@example.com", "--password": PASSWORD}
    del args[missing]

    result = run("users", "create", *[part for item in args.items() for part in item])

    assert result.exit_code != 0
    assert missing in result.output
    assert _users(db_session) == []


# --- flask sessions cleanup ----------------------------------------------------------------------


def test_sessions_cleanup_ends_only_expired_sessions(run, db_session, settings):
    user = factories.UserFactory()
    now = utcnow()
    # start_session gives an idle window of SESSION_IDLE_TIMEOUT from `now`.
    long_ago = now - timedelta(seconds=settings.SESSION_IDLE_TIMEOUT + 3600)
    expired = [start_session(db_session, user=user, settings=settings, now=long_ago).session for _ in range(2)]
    live = start_session(db_session, user=user, settings=settings).session
    logged_out = start_session(db_session, user=user, settings=settings, now=long_ago).session
    end_session(db_session, session_id=logged_out.id, reason=SessionEndReason.LOGOUT, now=long_ago)
    ids = {"expired": {s.id for s in expired}, "live": live.id, "logged_out": logged_out.id}

    result = run("sessions", "cleanup")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["expired 2 session(s)", "pruned 0 lapsed denial(s)",
                                          "deleted 0 lapsed sign-in failure count(s)"]
    rows = {s.id: s for s in db_session.scalars(select(UserSession))}
    assert all(rows[i].end_reason == SessionEndReason.EXPIRED and rows[i].ended_at is not None
               for i in ids["expired"])
    assert rows[ids["live"]].ended_at is None and rows[ids["live"]].end_reason is None
    assert rows[ids["logged_out"]].end_reason == SessionEndReason.LOGOUT
    assert rows[ids["logged_out"]].ended_at == long_ago


def test_sessions_cleanup_deletes_only_lapsed_sign_in_failure_counts(run, db_session, settings):
    now = utcnow()
    ago, ahead = now - timedelta(seconds=1), now + timedelta(seconds=60)
    db_session.add_all([LoginThrottle(key="lapsed", failures=3, window_ends_at=ago),
                        LoginThrottle(key="lock-lapsed", failures=0, window_ends_at=ago, locked_until=ago),
                        LoginThrottle(key="counting", failures=3, window_ends_at=ahead),
                        LoginThrottle(key="locked", failures=0, window_ends_at=ago, locked_until=ahead)])
    db_session.commit()

    result = run("sessions", "cleanup")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[2] == "deleted 2 lapsed sign-in failure count(s)"
    assert set(db_session.scalars(select(LoginThrottle.key))) == {"counting", "locked"}


def test_sessions_cleanup_with_nothing_expired_reports_zero(run, db_session, settings):
    user = factories.UserFactory()
    start_session(db_session, user=user, settings=settings)

    result = run("sessions", "cleanup")

    assert result.exit_code == 0
    assert result.output.splitlines() == ["expired 0 session(s)", "pruned 0 lapsed denial(s)",
                                          "deleted 0 lapsed sign-in failure count(s)"]
    ended = select(func.count()).select_from(UserSession).where(UserSession.ended_at.is_not(None))
    assert db_session.scalar(ended) == 0


def test_sessions_cleanup_deletes_only_lapsed_denials(run, db_session):
    now = utcnow()
    db_session.add_all([RevokedToken(key="lapsed", expires_at=now - timedelta(seconds=1)),
                        RevokedToken(key="in-force", expires_at=now + timedelta(minutes=10))])
    db_session.commit()

    result = run("sessions", "cleanup")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "pruned 1 lapsed denial(s)"
    assert list(db_session.scalars(select(RevokedToken.key))) == ["in-force"]


# --- flask seed ----------------------------------------------------------------------------------


def test_seed_creates_the_demo_organization_once_and_prints_it(run, db_session):
    """The demo user owns organization acme ("Acme Inc."); a second run finds it instead of failing."""
    for _ in range(2):
        result = run("seed")
        assert result.exit_code == 0, result.output

    [organization] = db_session.scalars(select(Organization)).all()
    assert (organization.slug, organization.name) == ("acme", "Acme Inc.")
    [membership] = db_session.scalars(select(Membership)).all()
    assert membership.user.email == DEMO_EMAIL and membership.role.name == "owner"
    [created] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "org.created")).all()
    assert created.organization_id == organization.id
    assert f"organization   acme (Acme Inc.) id={organization.id}" in result.output
    authorize_url = next(word for word in result.output.split() if "/oauth2/authorize?" in word)
    assert parse_qs(urlsplit(authorize_url).query)["organization"] == ["acme"]


def test_seed_demo_clients_may_ask_for_the_organization_claims_even_when_seeded_before(run, db_session):
    """The printed authorize URL asks for `organization` (userinfo's organization claims); a web app seeded
    by an earlier version without that scope is brought up to date instead of failing with invalid_scope."""
    factories.OAuthClientFactory(name="Demo web app", scopes=["openid", "profile", "email", "offline_access"],
                       redirect_uris=["http://127.0.0.1:8765/callback"])

    result = run("seed")

    assert result.exit_code == 0, result.output
    authorize_url = next(word for word in result.output.split() if "/oauth2/authorize?" in word)
    requested = parse_qs(urlsplit(authorize_url).query)["scope"][0].split()
    web = db_session.scalars(select(OAuthClient).where(OAuthClient.name == "Demo web app")).one()
    db_session.refresh(web)
    assert "organization" in requested and set(requested) <= set(web.scopes)
