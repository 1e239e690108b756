"""`flask users list|suspend|unsuspend`, run as an operator would; they call services.platform_admin."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.cli import CLI_USER_AGENT
from app.models import AuditEvent, RefreshToken, SessionEndReason, UserStatus
from tests import factories


@pytest.fixture
def grace(db_session):
    return factories.UserFactory(email="grace@example.com", name="Grace Hopper")


def test_list_prints_matching_accounts_as_json_lines_and_the_total(run, grace):
    factories.UserFactory(email="alan@example.com", name="Alan Turing", status=UserStatus.SUSPENDED)

    everyone = run("users", "list")
    hopper = run("users", "list", "--q", "HOPPER")
    suspended = run("users", "list", "--status", "suspended")

    assert everyone.exit_code == 0, everyone.output
    assert {json.loads(line)["email"] for line in everyone.stdout.splitlines()} == {"grace@example.com",
                                                                                   "alan@example.com"}
    assert "2 account(s) match" in everyone.stderr
    assert [json.loads(line)["email"] for line in hopper.stdout.splitlines()] == ["grace@example.com"]
    assert [json.loads(line)["email"] for line in suspended.stdout.splitlines()] == ["alan@example.com"]


def test_list_refuses_an_unknown_status(run):
    result = run("users", "list", "--status", "banned")

    assert result.exit_code == 2


def test_suspend_ends_sessions_and_refresh_tokens_and_audits_the_operator(run, db_session, grace):
    session = factories.UserSessionFactory(user=grace)
    factories.issue_refresh_token(db_session, client=factories.OAuthClientFactory(), user=grace, organization=None)

    result = run("users", "suspend", "--email", "GRACE@example.com")

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert (printed["user"]["status"], printed["sessions_ended"], printed["refresh_tokens_revoked"]) == (
        "suspended", 1, 1)
    db_session.refresh(session)
    assert session.end_reason == SessionEndReason.SUSPENDED
    assert db_session.scalars(select(RefreshToken.revoked_at)).one() is not None
    event = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "user.suspended")).one()
    assert (event.actor_user_id, event.user_agent, event.target_id) == (None, CLI_USER_AGENT, str(grace.id))


def test_unsuspend_makes_the_account_active(run, db_session, grace):
    run("users", "suspend", "--email", grace.email)

    result = run("users", "unsuspend", "--email", grace.email)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "active"
    db_session.refresh(grace)
    assert grace.status == UserStatus.ACTIVE


@pytest.mark.parametrize(("command", "message"), [("suspend", "already suspended"), ("unsuspend", "not suspended")])
def test_suspend_and_unsuspend_refuse_a_no_op(run, db_session, grace, command, message):
    if command == "suspend":
        run("users", "suspend", "--email", grace.email)

    result = run("users", command, "--email", grace.email)

    assert result.exit_code == 1 and message in result.output


@pytest.mark.parametrize("command", ["suspend", "unsuspend"])
def test_unknown_email_fails(run, command):
    result = run("users", command, "--email", "nobody@example.com")

    assert result.exit_code == 1 and "No account has this email." in result.output


def test_suspend_refuses_the_last_active_platform_administrator(run, db_session):
    root = factories.UserFactory(email="root@example.com", is_platform_admin=True)
    factories.UserFactory(is_platform_admin=True, status=UserStatus.SUSPENDED)
    session = factories.UserSessionFactory(user=root)

    result = run("users", "suspend", "--email", root.email)

    assert result.exit_code == 1 and "last active platform administrator" in result.output
    db_session.refresh(root)
    db_session.refresh(session)
    assert root.status == UserStatus.ACTIVE and session.ended_at is None


def test_suspend_allows_an_administrator_when_another_is_active(run, db_session):
    root = factories.UserFactory(email="root@example.com", is_platform_admin=True)
    factories.UserFactory(is_platform_admin=True)

    assert run("users", "suspend", "--email", root.email).exit_code == 0
    db_session.refresh(root)
    assert root.status == UserStatus.SUSPENDED
