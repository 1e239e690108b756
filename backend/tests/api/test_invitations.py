"""/api/v1/organizations/<org_id>/invitations and /api/v1/invitations/accept, through the envelope API."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.models import AuditEvent, Invitation, InvitationStatus, Membership, User
from app.models.base import utcnow
from tests.conftest import Api, make_settings
from tests.factories import UserFactory, access_token, add_member, create_organization, session_token
from tests.mailbox import free_port, invitation_link, invitation_token, read_outbox

ACCEPT = "/api/v1/invitations/accept"
NEW_PASSWORD = "a brand new passphrase"
OUT_FIELDS = {"id", "email", "role", "status", "invited_by", "created_at", "expires_at", "accepted_at", "revoked_at"}


@pytest.fixture
def settings(database_url, tmp_path):
    return make_settings(database_url, MAIL_OUTBOX_DIR=str(tmp_path / "outbox"), ISSUER="https://auth.example.com")


def path(org, *rest: object) -> str:
    return "/".join([f"/api/v1/organizations/{org.id}/invitations", *map(str, rest)])


@pytest.fixture
def outbox(settings):
    return lambda: read_outbox(settings.MAIL_OUTBOX_DIR)


@pytest.fixture
def invite(api, org, owner_token, outbox):
    """Invite through the API as the owner; returns the response data and the emailed token."""
    def send(email: str = "bob@example.com", role: str = "member") -> tuple[dict, str]:
        response = api.post(path(org), json={"email": email, "role": role}, token=owner_token)
        assert response.status == 201, response.body
        return response.data, invitation_token(outbox()[-1].get_content())
    return send


def audit_actions(db_session, result: str = "success") -> list[str]:
    return list(db_session.scalars(select(AuditEvent.action).where(AuditEvent.result == result)
                                   .order_by(AuditEvent.occurred_at)))


def member_count(db_session, org) -> int:
    return db_session.scalar(select(func.count()).select_from(Membership)
                             .where(Membership.organization_id == org.id))


# --- POST /organizations/<org_id>/invitations ---------------------------------------------------


def test_create_invitation_returns_it_without_token(api, org, owner, owner_token, outbox):
    response = api.post(path(org), json={"email": "Bob@Example.com", "role": "admin"}, token=owner_token)

    assert response.status == 201
    data = response.data
    assert set(data) == OUT_FIELDS
    assert (data["email"], data["role"]["name"], data["status"]) == ("bob@example.com", "admin", "pending")
    assert data["invited_by"] == str(owner.id)
    assert (data["accepted_at"], data["revoked_at"]) == (None, None)
    token = invitation_token(outbox()[0].get_content())
    assert token not in str(response.body)


def test_create_invitation_emails_a_working_link(api, client, org, owner_token, outbox):
    api.post(path(org), json={"email": "bob@example.com", "role": "member"}, token=owner_token)

    [message] = outbox()
    assert (message["To"], message["Subject"]) == ("bob@example.com", "Invitation to join Acme Corp on Gatehouse")
    body = message.get_content()
    assert "Olive Owner (owner@example.com) invited you to join Acme Corp" in body
    assert "with the role member" in body
    link = invitation_link(body)
    assert link.startswith("https://auth.example.com/invitations/accept?token=")
    page = client.get(link.removeprefix("https://auth.example.com"))
    assert page.status_code == 200
    assert "Join Acme Corp" in page.get_data(as_text=True)


def test_create_invitation_writes_audit_event(api, db_session, org, owner_token):
    response = api.post(path(org), json={"email": "bob@example.com", "role": "member"}, token=owner_token)

    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "invitation.created")).all()
    assert (event.organization_id, event.target_id, event.details) == (org.id, response.data["id"],
                                                                       {"role": "member"})


def test_create_invitation_with_org_admin_access_token(app, api, db_session, org, owner):
    token = access_token(app, user=owner, organization=org)

    response = api.post(path(org), json={"email": "bob@example.com", "role": "member"}, token=token)

    assert response.status == 201


def test_create_invitation_for_existing_member_is_409(api, db_session, org, owner_token, outbox):
    add_member(db_session, org, UserFactory(email="bob@example.com"))

    response = api.post(path(org), json={"email": "BOB@example.com", "role": "member"}, token=owner_token)

    assert response.status == 409
    assert response.error_type == "CONFLICT"
    assert response.body["error"]["details"] == {"email": ["Already a member."]}
    assert outbox() == []


def test_create_invitation_when_one_is_pending_is_409(api, invite, org, owner_token):
    invite(email="bob@example.com")

    response = api.post(path(org), json={"email": "bob@example.com", "role": "admin"}, token=owner_token)

    assert response.status == 409
    assert response.body["error"]["details"] == {"email": ["Already invited."]}


def test_admin_inviting_an_owner_is_403(api, db_session, org, outbox):
    admin = UserFactory()
    add_member(db_session, org, admin, role="admin")

    response = api.post(path(org), json={"email": "bob@example.com", "role": "owner"}, token=session_token(admin))

    assert response.status == 403
    assert response.error_type == "PERMISSION_DENIED"
    assert db_session.scalars(select(Invitation)).all() == []
    assert outbox() == []


def test_member_without_members_invite_is_403(api, db_session, org):
    member = UserFactory()
    add_member(db_session, org, member)

    response = api.post(path(org), json={"email": "bob@example.com", "role": "member"}, token=session_token(member))

    assert response.status == 403


def test_create_invitation_in_organization_of_others_is_404(api, db_session, org):
    response = api.post(path(org), json={"email": "bob@example.com", "role": "member"},
                        token=session_token(UserFactory()))

    assert response.status == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "not-an-email", "role": "member"}, "email"),
    ({"email": "bob@example.com", "role": "superuser"}, "role"),
    ({"email": "bob@example.com"}, "role"),
    ({"email": "bob@example.com", "role": "member", "token": "mine"}, "token"),
], ids=["bad-email", "unknown-role", "missing-role", "unknown-field"])
def test_create_invitation_with_invalid_body_is_422(api, db_session, org, owner_token, body, field):
    response = api.post(path(org), json=body, token=owner_token)

    assert response.status == 422
    assert list(response.body["error"]["details"]) == [field]
    assert db_session.scalars(select(Invitation)).all() == []


@pytest.fixture
def api_with_mail_server_down(database_url, db_session) -> Api:
    """The API of an app whose SMTP server refuses connections."""
    app = create_app(make_settings(database_url, MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(),
                                   SMTP_STARTTLS=False, SMTP_TIMEOUT=2))
    yield Api(app.test_client(), db_session)
    with app.app_context():
        db.engine.dispose()


def test_create_invitation_when_mail_server_is_down_keeps_invitation(api_with_mail_server_down, db_session, org,
                                                                     owner_token, caplog):
    response = api_with_mail_server_down.post(path(org), json={"email": "bob@example.com", "role": "member"},
                                              token=owner_token)

    assert response.status == 201
    assert db_session.get(Invitation, uuid.UUID(response.data["id"])) is not None
    # SMTP delivery runs on the mail thread, after the answer: wait for its attempt.
    assert api_with_mail_server_down.client.application.extensions["gatehouse.mailer"].flush(timeout=10)
    assert "mail not sent (Invitation to join Acme Corp on Gatehouse): ConnectionRefusedError" in caplog.text
    assert "token=" not in caplog.text


# --- GET /organizations/<org_id>/invitations ----------------------------------------------------


@pytest.fixture
def one_of_each(db_session, invite):
    """Four invitations, one per status; returns their ids by status."""
    ids = {status: invite(email=f"{status}@example.com")[0]["id"] for status in InvitationStatus}
    now = utcnow()
    for status, column, value in (("accepted", "accepted_at", now), ("revoked", "revoked_at", now),
                                  ("expired", "expires_at", now - timedelta(seconds=1))):
        setattr(db_session.get(Invitation, uuid.UUID(ids[status])), column, value)
    db_session.commit()
    return ids


def test_list_invitations_pages_newest_first(api, org, owner_token, one_of_each):
    response = api.get(path(org), token=owner_token, query_string={"per_page": 3})

    assert response.status == 200
    assert response.body["meta"] == {"page": 1, "per_page": 3, "total": 4}
    assert len(response.data) == 3
    assert all(set(item) == OUT_FIELDS for item in response.data)


@pytest.mark.parametrize("status", list(InvitationStatus))
def test_list_invitations_filters_by_status(api, org, owner_token, one_of_each, status):
    response = api.get(path(org), token=owner_token, query_string={"status": status})

    assert [(i["id"], i["status"]) for i in response.data] == [(one_of_each[status], status)]
    assert response.body["meta"]["total"] == 1


def test_list_invitations_with_unknown_status_is_422(api, org, owner_token):
    response = api.get(path(org), token=owner_token, query_string={"status": "lost"})

    assert response.status == 422
    assert list(response.body["error"]["details"]) == ["status"]


def test_list_invitations_shows_none_of_another_organization(api, db_session, org, owner_token):
    other_owner = UserFactory()
    other = create_organization(db_session, owner=other_owner, slug="other")
    elsewhere = api.post(path(other), json={"email": "x@example.com", "role": "member"},
                         token=session_token(other_owner))
    assert elsewhere.status == 201

    response = api.get(path(org), token=owner_token)

    assert response.data == [] and response.body["meta"]["total"] == 0


# --- DELETE /organizations/<org_id>/invitations/<id> --------------------------------------------


def test_revoke_invitation_then_its_link_stops_working(api, db_session, org, owner_token, invite):
    data, token = invite()

    response = api.delete(path(org, data["id"]), token=owner_token)

    assert response.status == 200
    assert response.data["status"] == "revoked" and response.data["revoked_at"]
    assert "invitation.revoked" in audit_actions(db_session)
    accepted = api.post(ACCEPT, json={"token": token}, token=session_token(UserFactory(email="bob@example.com")))
    assert accepted.status == 409
    assert accepted.body["error"]["details"] == {"token": ["Revoked."]}


def test_revoke_invitation_of_another_organization_is_404(api, db_session, org, owner_token):
    other_owner = UserFactory()
    other = create_organization(db_session, owner=other_owner, slug="other")
    foreign = api.post(path(other), json={"email": "x@example.com", "role": "member"},
                       token=session_token(other_owner)).data

    response = api.delete(path(org, foreign["id"]), token=owner_token)

    assert response.status == 404
    assert response.error_type == "NOT_FOUND"
    assert db_session.get(Invitation, uuid.UUID(foreign["id"])).revoked_at is None


def test_revoke_unknown_invitation_is_404(api, org, owner_token):
    assert api.delete(path(org, uuid.uuid4()), token=owner_token).status == 404


def test_revoke_accepted_invitation_is_409(api, org, owner_token, invite):
    data, token = invite()
    api.post(ACCEPT, json={"token": token}, token=session_token(UserFactory(email="bob@example.com")))

    response = api.delete(path(org, data["id"]), token=owner_token)

    assert response.status == 409


# --- POST /invitations/accept, signed in --------------------------------------------------------


@pytest.fixture
def bob(db_session) -> User:
    return UserFactory(email="bob@example.com", email_verified=False)


def test_accept_signed_in_returns_membership_and_verifies_email(api, db_session, org, invite, bob):
    _, token = invite(role="admin")

    response = api.post(ACCEPT, json={"token": token}, token=session_token(bob))

    assert response.status == 200
    assert response.data["organization"] == {"id": str(org.id), "slug": "acme", "name": "Acme Corp"}
    assert response.data["role"]["name"] == "admin"
    assert response.data["user_id"] == str(bob.id)
    db_session.refresh(bob)
    assert bob.email_verified is True
    assert audit_actions(db_session)[-2:] == ["invitation.accepted", "membership.added"]


def test_accept_twice_is_409_already_accepted(api, db_session, org, invite, bob):
    _, token = invite()
    bob_token = session_token(bob)
    assert api.post(ACCEPT, json={"token": token}, token=bob_token).status == 200

    response = api.post(ACCEPT, json={"token": token}, token=bob_token)

    assert response.status == 409
    assert response.error_type == "CONFLICT"
    assert response.body["error"]["details"] == {"token": ["Already accepted."]}
    assert member_count(db_session, org) == 2


def test_accept_expired_invitation_is_409_expired(api, db_session, org, invite, bob):
    data, token = invite()
    db_session.get(Invitation, uuid.UUID(data["id"])).expires_at = utcnow() - timedelta(seconds=1)
    db_session.commit()

    response = api.post(ACCEPT, json={"token": token}, token=session_token(bob))

    assert response.status == 409
    assert response.body["error"]["details"] == {"token": ["Expired."]}
    assert "expired" in response.body["message"]
    assert audit_actions(db_session, result="failure") == ["invitation.accepted"]
    assert member_count(db_session, org) == 1


def test_accept_unknown_token_is_404(api, bob):
    response = api.post(ACCEPT, json={"token": "no-such-token"}, token=session_token(bob))

    assert response.status == 404
    assert response.error_type == "NOT_FOUND"


def test_accept_for_another_email_is_403_and_audited(api, db_session, org, invite):
    data, token = invite(email="bob@example.com")
    carol = UserFactory(email="carol@example.com")

    response = api.post(ACCEPT, json={"token": token}, token=session_token(carol))

    assert response.status == 403
    assert response.error_type == "PERMISSION_DENIED"
    assert response.body["message"] == "This invitation is for another email address."
    assert member_count(db_session, org) == 1
    assert db_session.get(Invitation, uuid.UUID(data["id"])).accepted_at is None
    [failure] = db_session.scalars(select(AuditEvent).where(AuditEvent.result == "failure")).all()
    assert (failure.action, failure.actor_user_id, failure.details) == ("invitation.accepted", carol.id,
                                                                        {"reason": "email_mismatch"})


def test_accept_when_already_member_is_409(api, db_session, org, invite, bob):
    _, token = invite()
    add_member(db_session, org, bob)

    response = api.post(ACCEPT, json={"token": token}, token=session_token(bob))

    assert response.status == 409
    assert response.body["message"] == "You are already a member of this organization."


def test_accept_signed_in_with_password_is_422(api, invite, bob):
    _, token = invite()

    response = api.post(ACCEPT, json={"token": token, "password": NEW_PASSWORD}, token=session_token(bob))

    assert response.status == 422
    assert list(response.body["error"]["details"]) == ["password"]


def test_accept_with_invalid_session_token_is_401(api, invite):
    _, token = invite()

    response = api.post(ACCEPT, json={"token": token}, token="not-a-session")

    assert response.status == 401
    assert response.error_type == "AUTHENTICATION_ERROR"


def test_accept_same_token_concurrently_exactly_one_wins(app, api, db_session, org, invite, bob):
    """Two tabs pressing accept at once: one membership, one success event (the conditional claim)."""
    _, token = invite()
    bob_token = session_token(bob)
    db_session.commit()  # the threads must see the rows; SQLite's write lock must be free
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def accept() -> None:
        client = app.test_client()
        barrier.wait(timeout=10)
        statuses.append(client.post(ACCEPT, json={"token": token},
                                    headers={"Authorization": f"Bearer {bob_token}"}).status_code)

    threads = [threading.Thread(target=accept) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [200, 409]
    assert member_count(db_session, org) == 2
    assert audit_actions(db_session).count("invitation.accepted") == 1


# --- POST /invitations/accept, registering ------------------------------------------------------


def test_accept_without_session_registers_verified_account_that_can_sign_in(api, db_session, org, invite):
    _, token = invite(email="dana@example.com", role="admin")

    response = api.post(ACCEPT, json={"token": token, "name": "Dana", "password": NEW_PASSWORD})

    assert response.status == 200
    assert response.data["role"]["name"] == "admin"
    dana = db_session.scalar(select(User).where(User.email == "dana@example.com"))
    assert (dana.name, dana.email_verified) == ("Dana", True)
    assert response.data["user_id"] == str(dana.id)
    login = api.post("/api/v1/auth/login", json={"email": "dana@example.com", "password": NEW_PASSWORD})
    assert login.status == 200


def test_accept_without_session_when_account_exists_is_409(api, db_session, invite, bob):
    data, token = invite(email="bob@example.com")

    response = api.post(ACCEPT, json={"token": token, "name": "Bob", "password": NEW_PASSWORD})

    assert response.status == 409
    assert "sign in" in response.body["message"]
    assert db_session.get(Invitation, uuid.UUID(data["id"])).accepted_at is None


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "Dana"}, "password"),
    ({"name": "Dana", "password": "short"}, "password"),
    ({"name": "Dana", "password": NEW_PASSWORD, "email": "other@example.com"}, "email"),
], ids=["no-password", "weak-password", "unknown-field"])
def test_accept_without_session_with_invalid_registration_is_422(api, db_session, invite, body, field):
    _, token = invite(email="dana@example.com")

    response = api.post(ACCEPT, json={"token": token, **body})

    assert response.status == 422
    assert list(response.body["error"]["details"]) == [field]
    assert db_session.scalar(select(User).where(User.email == "dana@example.com")) is None


def test_accept_without_session_expired_is_409_and_creates_no_account(api, db_session, invite):
    data, token = invite(email="dana@example.com")
    db_session.get(Invitation, uuid.UUID(data["id"])).expires_at = utcnow() - timedelta(seconds=1)
    db_session.commit()

    response = api.post(ACCEPT, json={"token": token, "name": "Dana", "password": NEW_PASSWORD})

    assert response.status == 409
    assert response.body["error"]["details"] == {"token": ["Expired."]}
    assert db_session.scalar(select(User).where(User.email == "dana@example.com")) is None


def test_accept_without_session_sixth_attempt_in_a_minute_is_429(api, settings, bob):
    assert settings.RATELIMIT_REGISTER == "5 per minute"
    statuses = [api.post(ACCEPT, json={"token": f"guess-{n}", "password": NEW_PASSWORD}).status for n in range(5)]

    limited = api.post(ACCEPT, json={"token": "guess-5", "password": NEW_PASSWORD})
    signed_in = api.post(ACCEPT, json={"token": "guess-6"}, token=session_token(bob))

    assert statuses == [404] * 5
    assert limited.status == 429 and limited.error_type == "RATE_LIMITED"
    assert signed_in.status == 404  # callers with a session are not counted against the limit
