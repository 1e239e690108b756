"""services.invitations: inviting, listing, revoking, and accepting (signed in, or by registering)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from app import errors
from app.extensions import db
from app.models import AuditEvent, Invitation, InvitationStatus, Membership, Role, User
from app.models.base import utcnow
from app.security import passwords
from app.services import invitations, mail, organizations
from app.services.actor import Actor
from tests.conftest import make_settings
from tests.factories import DEFAULT_PASSWORD, UserFactory, UserSessionFactory, add_member, create_organization
from tests.mailbox import invitation_link, invitation_token, read_outbox

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def settings(database_url, tmp_path):
    return make_settings(database_url, MAIL_OUTBOX_DIR=str(tmp_path / "outbox"))


@pytest.fixture
def access(db_session, org):
    """The Access of a member of `org` for members:invite, as require_org_permission sets it."""
    def of(user: User, permission: str = "members:invite") -> organizations.Access:
        return organizations.require_access(db_session, user=user, organization_id=org.id, permission=permission)
    return of


def actor(user: User | None) -> Actor:
    return Actor(user=user, ip="192.0.2.7", user_agent="pytest", request_id="req-invitations")


@pytest.fixture
def invite(db_session, owner, access, settings):
    """Invite as `by` (default: the owner), commit, and return the invitation with the emailed token."""
    def send(email: str = "bob@example.com", role: str = "member", by: User | None = None,
             now=None) -> tuple[Invitation, str]:
        by = by or owner
        invitation = invitations.invite_member(db_session, actor=actor(by), access=access(by), email=email,
                                               role=role, issuer=settings.ISSUER, now=now).invitation
        [message] = mail.queued(db_session)
        mail.drop_queued(db_session)  # db_session is not the app's: nothing sends it on commit
        db_session.commit()
        return invitation, invitation_token(message.body)
    return send


def events(db_session, action: str, result: str = "success") -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action,
                                                            AuditEvent.result == result)))


@pytest.fixture
def foreign_invitation(db_session, settings) -> Invitation:
    """An invitation of another organization."""
    other_owner = UserFactory()
    other = create_organization(db_session, owner=other_owner, slug="other")
    invitation = invitations.invite_member(
        db_session, actor=actor(other_owner), issuer=settings.ISSUER, email="x@example.com", role="member",
        access=organizations.require_access(db_session, user=other_owner, organization_id=other.id,
                                            permission="members:invite")).invitation
    mail.drop_queued(db_session)
    db_session.commit()
    return invitation


def membership_of(db_session, org, user) -> Membership | None:
    return organizations.get_membership(db_session, organization_id=org.id, user_id=user.id)


# --- invite_member ------------------------------------------------------------------------------


def test_invite_member_stores_pending_invitation_with_only_the_token_hash(db_session, invite, org, owner):
    invitation, token = invite()

    db_session.refresh(invitation)
    assert (invitation.organization_id, invitation.email, invitation.role.name) == (org.id, "bob@example.com",
                                                                                     "member")
    assert invitation.invited_by_user_id == owner.id
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert invitations.invitation_status(invitation) == invitations.PENDING


def test_invite_member_expires_after_default_ttl(invite):
    invitation, _ = invite()

    assert invitation.expires_at - invitation.created_at == timedelta(hours=168)


def test_invite_member_expires_after_organization_ttl(db_session, invite, org):
    org.settings = {"invitation_ttl_hours": 2}
    db_session.commit()

    invitation, _ = invite()

    assert invitation.expires_at - invitation.created_at == timedelta(hours=2)


def test_invite_member_queues_email_with_link_organization_inviter_role_and_expiry(db_session, owner, access,
                                                                                   settings):
    invitation = invitations.invite_member(db_session, actor=actor(owner), access=access(owner),
                                           email="bob@example.com", role="admin",
                                           issuer="https://auth.example.com").invitation

    [message] = mail.queued(db_session)
    assert message.to == "bob@example.com"
    assert message.subject == "Invitation to join Acme Corp on Gatehouse"
    assert invitation_link(message.body).startswith("https://auth.example.com/invitations/accept?token=")
    assert "Olive Owner (owner@example.com) invited you to join Acme Corp" in message.body
    assert "with the role admin" in message.body
    assert f"expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC" in message.body


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_invite_member_emails_only_once_the_transaction_commits(app, db_session, org, owner, settings, outcome):
    """Through the app's own session, whose commit hook (create_app) hands queued mail to the outbox."""
    owner_id, org_id = owner.id, org.id
    db_session.commit()  # release SQLite's write lock for the app's session
    with app.app_context():
        user = db.session.get(User, owner_id)
        access = organizations.require_access(db.session, user=user, organization_id=org_id,
                                              permission="members:invite")
        invitations.invite_member(db.session, actor=actor(user), access=access, email="bob@example.com",
                                  role="member", issuer=settings.ISSUER)
        assert read_outbox(settings.MAIL_OUTBOX_DIR) == []
        getattr(db.session, outcome)()

    sent = read_outbox(settings.MAIL_OUTBOX_DIR)
    stored = db_session.scalars(select(Invitation)).all()
    if outcome == "commit":
        assert [m["To"] for m in sent] == ["bob@example.com"]
        assert invitation_token(sent[0].get_content())
        assert len(stored) == 1
    else:
        assert (sent, stored) == ([], [])


def test_invite_member_subject_keeps_organization_name_on_one_line(db_session, owner, org, access, settings):
    org.name = "Acme\r\nBcc: victim@example.com"
    db_session.commit()

    invitations.invite_member(db_session, actor=actor(owner), access=access(owner), email="bob@example.com",
                              role="member", issuer=settings.ISSUER)

    [message] = mail.queued(db_session)
    assert message.subject == "Invitation to join Acme Bcc: victim@example.com on Gatehouse"
    mail.build_email(message, settings.MAIL_FROM)  # no header injection error


def test_invite_member_stores_email_lower_case(invite):
    invitation, _ = invite(email="  Bob@Example.COM ")

    assert invitation.email == "bob@example.com"


def test_invite_member_takes_role_by_id(db_session, invite, org):
    admin_role = organizations.builtin_role(db_session, org.id, "admin")

    invitation, _ = invite(role=str(admin_role.id))

    assert invitation.role_id == admin_role.id


@pytest.mark.parametrize("role", ["superuser", "other-org-role", str(uuid.uuid4())],
                         ids=["unknown-name", "other-organization-role-id", "unknown-id"])
def test_invite_member_with_role_not_of_this_organization_raises_validation_failed(db_session, invite, role):
    if role == "other-org-role":
        other = create_organization(db_session, owner=UserFactory(), slug="other")
        role = str(organizations.builtin_role(db_session, other.id, "member").id)

    with pytest.raises(errors.ValidationFailed) as raised:
        invite(role=role)

    assert list(raised.value.details) == ["role"]
    assert db_session.scalars(select(Invitation)).all() == []


def test_invite_member_when_admin_invites_owner_raises_permission_denied(db_session, invite, org):
    admin = UserFactory()
    add_member(db_session, org, admin, role="admin")

    with pytest.raises(errors.PermissionDenied):
        invite(role="owner", by=admin)

    assert db_session.scalars(select(Invitation)).all() == []


def test_invite_member_when_admin_invites_to_role_allowing_more_raises_permission_denied(db_session, invite,
                                                                                         org):
    admin = UserFactory()
    add_member(db_session, org, admin, role="admin")
    db_session.add(Role(organization_id=org.id, name="deleter", permissions=["org:read", "org:delete"]))
    db_session.commit()

    with pytest.raises(errors.PermissionDenied):
        invite(role="deleter", by=admin)


def test_invite_member_when_admin_invites_admin_succeeds(db_session, invite, org):
    admin = UserFactory()
    add_member(db_session, org, admin, role="admin")

    invitation, _ = invite(role="admin", by=admin)

    assert invitation.invited_by_user_id == admin.id


def test_invite_member_without_members_invite_permission_raises_permission_denied(db_session, org, access,
                                                                                  settings):
    member = UserFactory()
    add_member(db_session, org, member)

    with pytest.raises(errors.PermissionDenied):
        invitations.invite_member(db_session, actor=actor(member), access=access(member, "members:read"),
                                  email="bob@example.com", role="member", issuer=settings.ISSUER)


def test_invite_member_when_email_belongs_to_member_raises_conflict(db_session, invite, org):
    add_member(db_session, org, UserFactory(email="bob@example.com"))

    with pytest.raises(errors.Conflict) as raised:
        invite(email="BOB@example.com")

    assert raised.value.details == {"email": ["Already a member."]}


def test_invite_member_when_email_has_pending_invitation_raises_conflict(invite):
    invite(email="bob@example.com")

    with pytest.raises(errors.Conflict) as raised:
        invite(email="Bob@Example.com")

    assert raised.value.details == {"email": ["Already invited."]}


@pytest.mark.parametrize("ended", ["expired", "revoked"])
def test_invite_member_after_earlier_invitation_ended_succeeds(db_session, invite, ended):
    earlier, _ = invite()
    if ended == "expired":
        earlier.expires_at = utcnow() - timedelta(seconds=1)
    else:
        earlier.revoked_at = utcnow()
    db_session.commit()

    again, _ = invite()

    assert again.id != earlier.id


def test_invite_member_records_audit_event_without_email_or_token(db_session, invite, org, owner):
    invitation, _ = invite()

    [event] = events(db_session, "invitation.created")
    assert (event.organization_id, event.actor_user_id) == (org.id, owner.id)
    assert (event.target_type, event.target_id) == ("invitation", str(invitation.id))
    assert event.details == {"role": "member"}
    assert event.request_id == "req-invitations"


# --- list_invitations ---------------------------------------------------------------------------


@pytest.fixture
def one_of_each(db_session, invite):
    """Four invitations of `org`, one per status."""
    now = utcnow()
    made = {}
    for status in InvitationStatus:
        invitation, _ = invite(email=f"{status}@example.com")
        made[status] = invitation
    made["accepted"].accepted_at = now
    made["revoked"].revoked_at = now
    made["expired"].expires_at = now - timedelta(seconds=1)
    db_session.commit()
    return made


@pytest.mark.parametrize("status", list(InvitationStatus))
def test_list_invitations_filters_by_status(db_session, org, one_of_each, status):
    items, total = invitations.list_invitations(db_session, organization_id=org.id, status=status, page=1,
                                                per_page=20)

    assert [i.invitation.id for i in items] == [one_of_each[status].id]
    assert total == 1
    assert items[0].status == status


def test_list_invitations_pages_newest_first(db_session, org, invite):
    start = utcnow() - timedelta(minutes=5)
    made = [invite(email=f"p{n}@example.com", now=start + timedelta(seconds=n))[0] for n in range(3)]

    first, total = invitations.list_invitations(db_session, organization_id=org.id, page=1, per_page=2)
    second, _ = invitations.list_invitations(db_session, organization_id=org.id, page=2, per_page=2)

    assert total == 3
    assert [i.invitation.id for i in first + second] == [made[2].id, made[1].id, made[0].id]


def test_list_invitations_shows_only_the_organization(db_session, org, invite, foreign_invitation):
    mine, _ = invite()

    items, total = invitations.list_invitations(db_session, organization_id=org.id, page=1, per_page=20)

    assert ([i.invitation.id for i in items], total) == ([mine.id], 1)


def test_list_invitations_decides_filter_and_status_at_the_same_moment(db_session, org, invite):
    invitation, _ = invite()
    after_expiry = invitation.expires_at + timedelta(seconds=1)

    items, _ = invitations.list_invitations(db_session, organization_id=org.id, page=1, per_page=20, now=after_expiry)
    pending, _ = invitations.list_invitations(db_session, organization_id=org.id, page=1, per_page=20,
                                              status=invitations.PENDING, now=after_expiry)

    assert [(i.invitation.id, i.status) for i in items] == [(invitation.id, invitations.EXPIRED)]
    assert pending == []


# --- revoke_invitation --------------------------------------------------------------------------


def test_revoke_invitation_sets_revoked_at_and_records_event(db_session, invite, owner, access, org):
    invitation, _ = invite()

    revoked = invitations.revoke_invitation(db_session, actor=actor(owner), access=access(owner),
                                            invitation_id=invitation.id)

    assert revoked.invitation.revoked_at is not None
    assert revoked.status == invitations.REVOKED
    [event] = events(db_session, "invitation.revoked")
    assert (event.organization_id, event.target_id) == (org.id, str(invitation.id))


def test_revoke_invitation_twice_changes_nothing(db_session, invite, owner, access):
    invitation, _ = invite()
    first = invitations.revoke_invitation(db_session, actor=actor(owner), access=access(owner),
                                          invitation_id=invitation.id)
    revoked_at = first.invitation.revoked_at

    again = invitations.revoke_invitation(db_session, actor=actor(owner), access=access(owner),
                                          invitation_id=invitation.id)

    assert (again.invitation.revoked_at, again.status) == (revoked_at, invitations.REVOKED)
    assert len(events(db_session, "invitation.revoked")) == 1


def test_revoke_invitation_when_accepted_raises_conflict(db_session, invite, owner, access):
    invitation, token = invite()
    invitations.accept_invitation(db_session, actor=actor(None), user=UserFactory(email="bob@example.com"),
                                  token=token)

    with pytest.raises(errors.Conflict):
        invitations.revoke_invitation(db_session, actor=actor(owner), access=access(owner),
                                      invitation_id=invitation.id)


def test_revoke_invitation_of_another_organization_raises_not_found(db_session, owner, access, foreign_invitation):
    with pytest.raises(errors.NotFound):
        invitations.revoke_invitation(db_session, actor=actor(owner), access=access(owner),
                                      invitation_id=foreign_invitation.id)

    db_session.refresh(foreign_invitation)
    assert foreign_invitation.revoked_at is None


def test_revoke_invitation_when_admin_revokes_owner_invitation_raises_permission_denied(db_session, invite, org,
                                                                                        access):
    invitation, _ = invite(role="owner")
    admin = UserFactory()
    add_member(db_session, org, admin, role="admin")

    with pytest.raises(errors.PermissionDenied):
        invitations.revoke_invitation(db_session, actor=actor(admin), access=access(admin),
                                      invitation_id=invitation.id)


# --- accept_invitation (signed in) --------------------------------------------------------------


@pytest.fixture
def bob(db_session) -> User:
    return UserFactory(email="bob@example.com", email_verified=False)


def test_accept_invitation_makes_user_member_with_invited_role(db_session, invite, org, bob):
    invitation, token = invite(role="admin")

    membership = invitations.accept_invitation(db_session, actor=actor(bob), user=bob, token=token)

    assert (membership.organization_id, membership.user_id, membership.role.name) == (org.id, bob.id, "admin")
    db_session.refresh(invitation)
    assert invitation.accepted_by_user_id == bob.id
    assert invitations.invitation_status(invitation) == invitations.ACCEPTED


def test_accept_invitation_verifies_the_users_email(db_session, invite, bob):
    _, token = invite()

    invitations.accept_invitation(db_session, actor=actor(bob), user=bob, token=token)

    assert bob.email_verified is True


def test_accept_invitation_matches_email_ignoring_case(db_session, invite, org, bob):
    _, token = invite(email="BOB@EXAMPLE.com")

    invitations.accept_invitation(db_session, actor=actor(bob), user=bob, token=token)

    assert membership_of(db_session, org, bob) is not None


def test_accept_invitation_records_accepted_and_membership_events(db_session, invite, org, bob):
    invitation, token = invite()

    invitations.accept_invitation(db_session, actor=actor(bob), user=bob, token=token)

    [accepted] = events(db_session, "invitation.accepted")
    [added] = events(db_session, "membership.added")
    assert (accepted.organization_id, accepted.actor_user_id, accepted.target_id) == (org.id, bob.id,
                                                                                      str(invitation.id))
    assert (added.organization_id, added.target_type, added.target_id) == (org.id, "user", str(bob.id))
    assert added.details == {"role": "member", "via": "invitation"}


def test_accept_invitation_twice_raises_already_accepted(db_session, invite, bob):
    _, token = invite()
    invitations.accept_invitation(db_session, actor=actor(bob), user=bob, token=token)
    db_session.commit()

    with pytest.raises(invitations.InvitationUnusable) as raised:
        invitations.accept_invitation(db_session, actor=actor(bob), user=bob, token=token)

    assert (raised.value.status, raised.value.reason) == (409, "accepted")
    assert raised.value.details == {"token": ["Already accepted."]}


@pytest.mark.parametrize(("column", "reason", "detail"), [
    ("expires_at", "expired", "Expired."),
    ("revoked_at", "revoked", "Revoked."),
])
def test_accept_invitation_no_longer_pending_raises_and_records_failure(db_session, invite, org, bob, column,
                                                                        reason, detail):
    invitation, token = invite()
    setattr(invitation, column, utcnow() - timedelta(seconds=1))
    db_session.commit()

    with pytest.raises(invitations.InvitationUnusable) as raised:
        invitations.accept_invitation(db_session, actor=actor(bob), user=bob, token=token)

    assert (raised.value.reason, raised.value.details) == (reason, {"token": [detail]})
    assert membership_of(db_session, org, bob) is None
    [failure] = events(db_session, "invitation.accepted", result="failure")
    assert failure.details == {"reason": reason}


def _before_the_claim(db_session, change) -> None:
    """Run `change` on the invitation row right before the conditional UPDATE that claims or revokes it,
    on the same connection: the race a concurrent request would cause, the same on every backend."""
    pending = [change]

    def interpose(orm_execute_state):
        if pending and orm_execute_state.is_update and "invitations" in str(orm_execute_state.statement):
            orm_execute_state.session.connection().execute(pending.pop())
    event.listen(db_session, "do_orm_execute", interpose)


@pytest.mark.parametrize(("column", "status"), [("revoked_at", "revoked"), ("accepted_at", "accepted")])
def test_accept_invitation_loses_to_a_revocation_or_acceptance_that_got_there_first(db_session, invite, org, bob,
                                                                                  column, status):
    """The checks passed, then another request changed the row: only the conditional claim sees it."""
    invitation, token = invite()
    _before_the_claim(db_session, update(Invitation).where(Invitation.id == invitation.id).values({column: utcnow()}))

    with pytest.raises(invitations.InvitationUnusable) as raised:
        invitations.accept_invitation(db_session, actor=actor(bob), user=bob, token=token)

    assert raised.value.reason == status
    assert organizations.get_membership(db_session, organization_id=org.id, user_id=bob.id) is None


def test_revoke_invitation_loses_to_an_acceptance_that_got_there_first(db_session, invite, owner, access):
    invitation, _ = invite()
    _before_the_claim(db_session, update(Invitation).where(Invitation.id == invitation.id)
                      .values(accepted_at=utcnow()))

    with pytest.raises(errors.Conflict, match="accepted"):
        invitations.revoke_invitation(db_session, actor=actor(owner), access=access(owner),
                                      invitation_id=invitation.id)

    db_session.refresh(invitation)
    assert invitation.revoked_at is None


def test_accept_invitation_expires_at_its_expiry_time(db_session, invite, bob):
    invitation, token = invite()

    with pytest.raises(invitations.InvitationUnusable):
        invitations.accept_invitation(db_session, actor=actor(bob), user=bob, token=token, now=invitation.expires_at)


def test_accept_invitation_with_unknown_token_raises_not_found(db_session, invite, bob):
    invite()

    with pytest.raises(errors.NotFound):
        invitations.accept_invitation(db_session, actor=actor(bob), user=bob, token="not-a-token")


def test_accept_invitation_for_another_email_raises_and_keeps_it_pending(db_session, invite, org):
    invitation, token = invite(email="bob@example.com")
    carol = UserFactory(email="carol@example.com")

    with pytest.raises(invitations.InvitationForAnotherEmail) as raised:
        invitations.accept_invitation(db_session, actor=actor(carol), user=carol, token=token)

    assert raised.value.status == 403 and raised.value.type == "PERMISSION_DENIED"
    assert membership_of(db_session, org, carol) is None
    db_session.refresh(invitation)
    assert invitations.invitation_status(invitation) == invitations.PENDING
    [failure] = events(db_session, "invitation.accepted", result="failure")
    assert (failure.actor_user_id, failure.details) == (carol.id, {"reason": "email_mismatch"})


def test_accept_invitation_when_already_member_raises_conflict(db_session, invite, org, bob):
    invitation, token = invite()
    add_member(db_session, org, bob, role="admin")

    with pytest.raises(errors.Conflict) as raised:
        invitations.accept_invitation(db_session, actor=actor(bob), user=bob, token=token)

    assert not isinstance(raised.value, invitations.InvitationUnusable)
    db_session.refresh(invitation)
    assert invitation.accepted_at is None


# --- register_and_accept (no account yet) -------------------------------------------------------


def test_register_and_accept_creates_verified_account_and_membership(db_session, invite, org, settings):
    _, token = invite(email="dana@example.com")

    membership = invitations.register_and_accept(db_session, actor=actor(None), token=token, name="Dana",
                                                 password=NEW_PASSWORD, bcrypt_rounds=settings.BCRYPT_ROUNDS)

    user = membership.user
    assert (user.email, user.name, user.email_verified) == ("dana@example.com", "Dana", True)
    assert passwords.verify_password(NEW_PASSWORD, user.password_hash)
    assert membership.organization_id == org.id
    assert [e.target_id for e in events(db_session, "auth.register")] == [str(user.id)]
    assert len(events(db_session, "membership.added")) == 1


def test_register_and_accept_when_account_exists_raises_conflict(db_session, invite, settings, bob):
    invitation, token = invite(email="bob@example.com")

    with pytest.raises(errors.Conflict) as raised:
        invitations.register_and_accept(db_session, actor=actor(None), token=token, name="Bob",
                                        password=NEW_PASSWORD, bcrypt_rounds=settings.BCRYPT_ROUNDS)

    assert "sign in" in raised.value.message
    db_session.refresh(invitation)
    assert invitation.accepted_at is None


@pytest.mark.parametrize("password", [None, "short", "password123"], ids=["missing", "too-short", "common"])
def test_register_and_accept_with_unusable_password_raises_and_creates_nothing(db_session, invite, settings,
                                                                               password):
    invitation, token = invite(email="dana@example.com")

    with pytest.raises(errors.ValidationFailed) as raised:
        invitations.register_and_accept(db_session, actor=actor(None), token=token, name="Dana",
                                        password=password, bcrypt_rounds=settings.BCRYPT_ROUNDS)

    assert list(raised.value.details) == ["password"]
    db_session.rollback()
    assert db_session.scalar(select(User).where(User.email == "dana@example.com")) is None
    db_session.refresh(invitation)
    assert invitation.accepted_at is None


def test_register_and_accept_expired_invitation_raises_and_creates_no_account(db_session, invite, settings):
    invitation, token = invite(email="dana@example.com")
    invitation.expires_at = utcnow() - timedelta(seconds=1)
    db_session.commit()

    with pytest.raises(invitations.InvitationUnusable):
        invitations.register_and_accept(db_session, actor=actor(None), token=token, name="Dana",
                                        password=NEW_PASSWORD, bcrypt_rounds=settings.BCRYPT_ROUNDS)

    assert db_session.scalar(select(User).where(User.email == "dana@example.com")) is None


def test_register_accept_and_sign_in_starts_browser_session(db_session, invite, settings):
    _, token = invite(email="dana@example.com")

    joined = invitations.register_accept_and_sign_in(db_session, actor=actor(None), token=token, name="Dana",
                                                     password=NEW_PASSWORD, settings=settings)

    assert joined.session.session.user_id == joined.membership.user_id
    assert joined.session.session.kind == "browser"
    [login] = events(db_session, "auth.login")
    assert (login.target_id, login.details) == (str(joined.session.session.id), {"method": "invitation"})


def test_register_accept_and_sign_in_ends_the_browsers_previous_session(db_session, invite, bob, settings):
    """One browser, one signed-in user: registering through the page while signed in as bob signs bob out."""
    _, token = invite(email="dana@example.com")
    previous = UserSessionFactory(user=bob, kind="browser")

    joined = invitations.register_accept_and_sign_in(db_session, actor=actor(None), token=token, name="Dana",
                                                     password=NEW_PASSWORD, settings=settings,
                                                     previous_session_id=previous.id)

    db_session.refresh(previous)
    assert previous.ended_at is not None and previous.end_reason == "logout"
    assert joined.session.session.ended_at is None


# --- accept_or_register (the API's one entry point) ---------------------------------------------


def test_accept_or_register_signed_in_with_password_raises_validation_failed(db_session, invite, bob, settings):
    _, token = invite()

    with pytest.raises(errors.ValidationFailed) as raised:
        invitations.accept_or_register(db_session, actor=actor(bob), user=bob, token=token, password=DEFAULT_PASSWORD,
                                       bcrypt_rounds=settings.BCRYPT_ROUNDS)

    assert list(raised.value.details) == ["password"]


def test_accept_or_register_without_user_registers(db_session, invite, settings):
    _, token = invite(email="dana@example.com")

    membership = invitations.accept_or_register(db_session, actor=actor(None), user=None, token=token,
                                                password=NEW_PASSWORD, bcrypt_rounds=settings.BCRYPT_ROUNDS)

    assert membership.user.email == "dana@example.com"


# --- preview_invitation (the page) --------------------------------------------------------------


@pytest.mark.parametrize("account", [True, False])
def test_preview_invitation_says_whether_the_account_exists(db_session, invite, account):
    if account:
        UserFactory(email="bob@example.com")
    _, token = invite()

    preview = invitations.preview_invitation(db_session, token=token)

    assert preview.account_exists is account
    assert preview.inviter == "Olive Owner (owner@example.com)"


def test_preview_invitation_writes_no_audit_event_for_dead_token(db_session, invite):
    """Opening a dead link is not an attempt to accept it: unlike accept_invitation (which shares
    the token lookup and records the refusal), the preview leaves the trail alone."""
    invitation, token = invite()
    invitation.revoked_at = utcnow()
    db_session.commit()

    with pytest.raises(invitations.InvitationUnusable):
        invitations.preview_invitation(db_session, token=token)

    assert events(db_session, "invitation.accepted", result="failure") == []


def test_an_email_pending_in_another_organization_may_be_invited(db_session, invite, foreign_invitation):
    """The pending-invitation check is this organization's: another's invitation neither blocks the
    invite nor shows through a conflict."""
    invitation, _ = invite(email=foreign_invitation.email)
    assert invitation.organization_id != foreign_invitation.organization_id
