"""/api/v1/admin/users: platform administrators manage accounts (issue 15 §4)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.models import AuditEvent, LoginThrottle, Membership, RevokedToken, SessionEndReason, User, UserStatus
from app.security import passwords
from tests import factories
from tests.api.routes import api_operations, collection_app, fill_rule, rule_variables
from tests.conftest import make_settings
from tests.mailbox import read_outbox, reset_link, reset_token

BASE = "/api/v1/admin/users"


@pytest.fixture
def settings(database_url, tmp_path):
    # Two failures from one address lock it out; three from everywhere throttle the email.
    return make_settings(database_url, MAIL_OUTBOX_DIR=str(tmp_path / "outbox"), RATELIMIT_LOGIN="1000 per minute",
                         LOGIN_MAX_FAILURES=2, LOGIN_ACCOUNT_THROTTLE_FAILURES=3)


@pytest.fixture
def platform_admin(db_session) -> User:
    return factories.UserFactory(email="root@example.com", name="Rita Root", is_platform_admin=True)


@pytest.fixture
def admin_token(platform_admin) -> str:
    return factories.session_token(platform_admin)


@pytest.fixture
def target(db_session) -> User:
    return factories.UserFactory(email="grace.hopper@example.com", name="Grace Hopper")


def audit_of(db_session, action: str) -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.occurred_at)))


# --- who may call: every admin operation, from the URL map, so a new one is covered too -------------

ADMIN_OPERATIONS = [op for op in api_operations(collection_app()) if op.rule.startswith("/api/v1/admin/")]
BODIES = {("POST", f"{BASE}"): {"email": "new@example.com"}, ("PATCH", f"{BASE}/<uuid:user_id>"): {"name": "X"}}


def test_admin_operations_are_all_listed():
    assert {(op.method, op.rule) for op in ADMIN_OPERATIONS} == {
        ("GET", BASE), ("POST", BASE), ("GET", f"{BASE}/<uuid:user_id>"), ("PATCH", f"{BASE}/<uuid:user_id>"),
        ("DELETE", f"{BASE}/<uuid:user_id>"), ("POST", f"{BASE}/<uuid:user_id>/suspend"),
        ("POST", f"{BASE}/<uuid:user_id>/unsuspend"), ("POST", f"{BASE}/<uuid:user_id>/unlock"),
        ("POST", f"{BASE}/<uuid:user_id>/password-reset"), ("GET", f"{BASE}/<uuid:user_id>/login-history"),
        ("GET", "/api/v1/admin/audit-events")}


@pytest.mark.parametrize("operation", ADMIN_OPERATIONS, ids=lambda op: f"{op.method} {op.rule}")
def test_admin_operation_for_non_admin_is_403_and_changes_nothing(api, db_session, settings, target, operation):
    token = factories.session_token(factories.UserFactory())
    path = fill_rule(operation.rule, {name: str(target.id) for name in rule_variables(operation.rule)})

    response = api.request(operation.method, path, token=token, json=BODIES.get((operation.method, operation.rule)))

    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"
    db_session.refresh(target)
    assert (target.status, target.name) == (UserStatus.ACTIVE, "Grace Hopper")
    assert db_session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("user.%"))).all() == []
    assert read_outbox(settings.MAIL_OUTBOX_DIR) == []


@pytest.mark.parametrize("operation", ADMIN_OPERATIONS, ids=lambda op: f"{op.method} {op.rule}")
def test_admin_operation_without_session_is_401(api, target, operation):
    path = fill_rule(operation.rule, {name: str(target.id) for name in rule_variables(operation.rule)})

    response = api.request(operation.method, path, json=BODIES.get((operation.method, operation.rule)))

    assert response.status == 401 and response.error_type == "AUTHENTICATION_ERROR"


@pytest.mark.parametrize("operation", [op for op in ADMIN_OPERATIONS if "<uuid:user_id>" in op.rule],
                         ids=lambda op: f"{op.method} {op.rule}")
def test_admin_operation_on_unknown_user_is_404(api, admin_token, operation):
    path = fill_rule(operation.rule, {"user_id": str(uuid.uuid4())})

    response = api.request(operation.method, path, token=admin_token,
                           json=BODIES.get((operation.method, operation.rule)))

    assert response.status == 404 and response.error_type == "NOT_FOUND"


# --- list, create, overview, update -------------------------------------------------------------


def test_list_filters_by_q_on_email_or_name_and_by_status(api, db_session, admin_token, target):
    suspended = factories.UserFactory(email="ada@example.com", name="Ada HOPPER-Lovelace", status=UserStatus.SUSPENDED)

    by_name = api.get(f"{BASE}?q=hopper", token=admin_token)
    by_email = api.get(f"{BASE}?q=GRACE.h", token=admin_token)
    by_status = api.get(f"{BASE}?q=hopper&status=suspended", token=admin_token)

    assert {u["email"] for u in by_name.data} == {target.email, suspended.email}
    assert by_name.body["meta"] == {"page": 1, "per_page": 20, "total": 2}
    assert [u["email"] for u in by_email.data] == [target.email]
    assert [u["email"] for u in by_status.data] == [suspended.email]


def test_list_treats_like_wildcards_in_q_as_text(api, admin_token, target):
    assert api.get(f"{BASE}?q=%25", token=admin_token).data == []


def test_list_paginates(api, admin_token, target):
    response = api.get(f"{BASE}?per_page=1&page=2", token=admin_token)

    assert response.body["meta"] == {"page": 2, "per_page": 1, "total": 2} and len(response.data) == 1


@pytest.mark.parametrize("query", ["status=banned", "per_page=0", "q=" + "x" * 321])
def test_list_with_invalid_query_is_422(api, admin_token, query):
    assert api.get(f"{BASE}?{query}", token=admin_token).status == 422


def test_create_makes_an_account_without_password_and_emails_a_reset_link(api, db_session, admin_token,
                                                                          platform_admin, settings):
    response = api.post(BASE, token=admin_token, json={"email": "New.Person@Example.com", "name": "New Person",
                                                       "email_verified": True})

    assert response.status == 201 and response.data["email"] == "new.person@example.com"
    user = db_session.get(User, uuid.UUID(response.data["id"]))
    assert (user.password_hash, user.email_verified, user.is_platform_admin) == (None, True, False)
    [message] = read_outbox(settings.MAIL_OUTBOX_DIR)
    assert message["To"] == "new.person@example.com" and reset_link(message.get_content())
    assert reset_token(message.get_content()) not in str(response.body)
    [event] = audit_of(db_session, "user.created")
    assert (event.actor_user_id, event.target_id) == (platform_admin.id, str(user.id))


def test_create_with_a_taken_email_is_409(api, admin_token, target):
    response = api.post(BASE, token=admin_token, json={"email": target.email.upper()})

    assert response.status == 409 and response.error_type == "CONFLICT"


def test_create_refuses_a_password_field(api, admin_token):
    response = api.post(BASE, token=admin_token, json={"email": "x@example.com", "password": "chosen by admin"})

    assert response.status == 422 and "password" in response.body["error"]["details"]


def test_overview_shows_organizations_sessions_identities_and_keys_without_secrets(api, db_session, admin_token,
                                                                                   target, org):
    factories.add_member(db_session, org, target, "admin")
    live = factories.UserSessionFactory(user=target)
    ended = factories.UserSessionFactory(user=target, ended_at=live.created_at)
    key_row, key = factories.api_key(db_session, target)

    response = api.get(f"{BASE}/{target.id}", token=admin_token)

    assert response.status == 200
    assert response.data["user"]["email"] == target.email
    assert [(m["organization"]["slug"], m["role"]["name"]) for m in response.data["organizations"]] == [
        ("acme", "admin")]
    assert [s["id"] for s in response.data["live_sessions"]] == [str(live.id)]
    assert ended.ended_at is not None
    assert response.data["identities"] == []
    assert [k["id"] for k in response.data["api_keys"]] == [str(key_row.id)]
    assert key not in str(response.body) and key_row.key_hash not in str(response.body)
    assert "password_hash" not in str(response.body) and "token_hash" not in str(response.body)


def test_update_changes_name_verification_and_admin_and_audits_the_fields(api, db_session, admin_token, target):
    response = api.patch(f"{BASE}/{target.id}", token=admin_token,
                         json={"name": "Rear Admiral Hopper", "is_platform_admin": True, "email_verified": False})

    assert response.status == 200
    assert (response.data["name"], response.data["is_platform_admin"], response.data["email_verified"]) == (
        "Rear Admiral Hopper", True, False)
    [event] = audit_of(db_session, "user.updated")
    assert event.details == {"fields": ["email_verified", "is_platform_admin", "name"]}


def test_update_demotes_another_administrator_and_audits_it(api, db_session, admin_token):
    other = factories.UserFactory(is_platform_admin=True)
    db_session.commit()

    response = api.patch(f"{BASE}/{other.id}", token=admin_token, json={"is_platform_admin": False})

    assert response.status == 200 and response.data["is_platform_admin"] is False
    db_session.refresh(other)
    assert other.is_platform_admin is False
    [event] = audit_of(db_session, "user.updated")
    assert event.details == {"fields": ["is_platform_admin"]}


def test_update_refuses_a_password_or_status_field(api, admin_token, target):
    response = api.patch(f"{BASE}/{target.id}", token=admin_token, json={"password": "x" * 20, "status": "active"})

    assert response.status == 422
    assert set(response.body["error"]["details"]) == {"password", "status"}


# --- the rules that keep the platform administrable ---------------------------------------------


def test_admin_cannot_demote_themselves(api, db_session, admin_token, platform_admin):
    factories.UserFactory(is_platform_admin=True)  # not the last one: the self rule alone refuses

    response = api.patch(f"{BASE}/{platform_admin.id}", token=admin_token, json={"is_platform_admin": False})

    assert response.status == 409 and "your own" in response.body["message"]
    db_session.refresh(platform_admin)
    assert platform_admin.is_platform_admin


def test_admin_cannot_suspend_themselves(api, db_session, admin_token, platform_admin):
    factories.UserFactory(is_platform_admin=True)

    response = api.post(f"{BASE}/{platform_admin.id}/suspend", token=admin_token)

    assert response.status == 409 and "your own" in response.body["message"]
    db_session.refresh(platform_admin)
    assert platform_admin.status == UserStatus.ACTIVE


def test_admin_cannot_delete_themselves(api, db_session, admin_token, platform_admin):
    factories.UserFactory(is_platform_admin=True)

    response = api.delete(f"{BASE}/{platform_admin.id}", token=admin_token)

    assert response.status == 409 and "DELETE /api/v1/users/me" in response.body["message"]
    assert db_session.get(User, platform_admin.id) is not None


# --- suspend and unsuspend ----------------------------------------------------------------------


def test_suspend_ends_sessions_revokes_refresh_tokens_and_denies_their_access_tokens(api, db_session, admin_token,
                                                                                     platform_admin, target):
    sessions = [factories.UserSessionFactory(user=target) for _ in range(2)]
    family = factories.issue_refresh_token(db_session, client=factories.OAuthClientFactory(), user=target,
                                           organization=None, access_token_jti="live-jti")

    response = api.post(f"{BASE}/{target.id}/suspend", token=admin_token)

    assert response.status == 200
    assert (response.data["sessions_ended"], response.data["refresh_tokens_revoked"],
            response.data["api_keys_revoked"]) == (2, 1, 0)
    assert response.data["user"]["status"] == "suspended"
    for session in sessions:
        db_session.refresh(session)
        assert (session.ended_at is not None, session.end_reason) == (True, SessionEndReason.SUSPENDED)
    db_session.refresh(family)
    assert family.revoked_at is not None
    assert db_session.get(RevokedToken, "live-jti") is not None
    [event] = audit_of(db_session, "user.suspended")
    assert (event.actor_user_id, event.target_id, event.details) == (
        platform_admin.id, str(target.id), {"sessions_ended": 2, "refresh_tokens_revoked": 1, "api_keys_revoked": 0})


def test_suspend_revokes_the_users_api_keys_for_good(api, db_session, admin_token, target):
    """Issue 15 §3: a key dies with its user's suspension; unsuspending does not bring it back."""
    row, key = factories.api_key(db_session, target)
    assert api.get("/api/v1/users/me", headers={"X-API-Key": key}).status == 200

    response = api.post(f"{BASE}/{target.id}/suspend", token=admin_token)

    assert response.status == 200 and response.data["api_keys_revoked"] == 1
    db_session.refresh(row)
    assert row.revoked_at is not None
    assert api.post(f"{BASE}/{target.id}/unsuspend", token=admin_token).status == 200
    assert api.get("/api/v1/users/me", headers={"X-API-Key": key}).status == 401


def test_suspended_user_cannot_sign_in_or_use_a_session(api, admin_token, target, login):
    token = login(target)
    api.post(f"{BASE}/{target.id}/suspend", token=admin_token)

    assert api.get("/api/v1/auth/me", token=token).status == 401
    refused = api.post("/api/v1/auth/login", json={"email": target.email, "password": factories.DEFAULT_PASSWORD})
    assert refused.status == 403 and refused.body["message"] == "This account is suspended."


def test_suspend_an_already_suspended_account_is_409(api, admin_token, target):
    api.post(f"{BASE}/{target.id}/suspend", token=admin_token)

    assert api.post(f"{BASE}/{target.id}/suspend", token=admin_token).status == 409


def test_unsuspend_lets_the_user_sign_in_again(api, db_session, admin_token, target, login):
    api.post(f"{BASE}/{target.id}/suspend", token=admin_token)

    response = api.post(f"{BASE}/{target.id}/unsuspend", token=admin_token)

    assert response.status == 200 and response.data["status"] == "active"
    assert login(target)
    assert len(audit_of(db_session, "user.unsuspended")) == 1


def test_unsuspend_an_active_account_is_409(api, admin_token, target):
    assert api.post(f"{BASE}/{target.id}/unsuspend", token=admin_token).status == 409


# --- unlock -------------------------------------------------------------------------------------

ADDRESS_A, ADDRESS_B = {"REMOTE_ADDR": "198.51.100.7"}, {"REMOTE_ADDR": "203.0.113.9"}


def sign_in_from(api, user, address: dict, password: str = factories.DEFAULT_PASSWORD):
    return api.post("/api/v1/auth/login", json={"email": user.email, "password": password}, environ_base=address)


def test_unlock_lifts_every_lock_on_the_email_and_the_user_can_sign_in_again(api, db_session, admin_token, target):
    for address in (ADDRESS_A, ADDRESS_A, ADDRESS_B):
        assert sign_in_from(api, target, address, password="wrong password!").status in (401, 423)
    assert sign_in_from(api, target, ADDRESS_A).status == 423  # this address is locked out
    assert sign_in_from(api, target, ADDRESS_B).status == 429  # the email is throttled everywhere
    other = factories.UserFactory()
    assert sign_in_from(api, other, ADDRESS_A, password="wrong password!").status == 401

    response = api.post(f"{BASE}/{target.id}/unlock", token=admin_token)

    assert response.status == 200 and response.data == {"counters_cleared": 3}
    assert sign_in_from(api, target, ADDRESS_A).status == 200
    assert sign_in_from(api, target, ADDRESS_B).status == 200
    assert len(db_session.scalars(select(LoginThrottle)).all()) == 2  # the other email's counters stay
    [event] = audit_of(db_session, "user.unlocked")
    assert event.details == {"counters_cleared": 3}


# --- password reset -----------------------------------------------------------------------------


def test_password_reset_emails_the_owner_a_link_and_the_response_carries_no_token(api, db_session, admin_token,
                                                                                platform_admin, target, settings):
    response = api.post(f"{BASE}/{target.id}/password-reset", token=admin_token)

    assert response.status == 202 and response.data == {}
    [message] = read_outbox(settings.MAIL_OUTBOX_DIR)
    assert message["To"] == target.email
    token = reset_token(message.get_content())
    assert token not in str(response.body) and token not in str(dict(response.headers))
    [event] = audit_of(db_session, "user.password_reset_sent")
    assert (event.actor_user_id, event.target_id) == (platform_admin.id, str(target.id))
    assert token not in str(event.details)
    reset = api.post("/api/v1/auth/password/reset", json={"token": token, "password": "the owner's own choice"})
    assert reset.status == 200
    db_session.refresh(target)
    assert passwords.verify_password("the owner's own choice", target.password_hash)


def test_password_reset_of_a_suspended_account_is_409_and_sends_nothing(api, admin_token, target, settings):
    api.post(f"{BASE}/{target.id}/suspend", token=admin_token)

    assert api.post(f"{BASE}/{target.id}/password-reset", token=admin_token).status == 409
    assert read_outbox(settings.MAIL_OUTBOX_DIR) == []


# --- delete -------------------------------------------------------------------------------------


def test_delete_removes_the_account_and_its_memberships(api, db_session, admin_token, platform_admin, target, org):
    factories.add_member(db_session, org, target, "member")
    target_id, admin_id = target.id, platform_admin.id

    response = api.delete(f"{BASE}/{target_id}", token=admin_token)

    assert response.status == 200
    db_session.expunge_all()
    assert db_session.get(User, target_id) is None
    assert db_session.scalars(select(Membership).where(Membership.user_id == target_id)).all() == []
    [event] = audit_of(db_session, "user.deleted")
    assert event.actor_user_id == admin_id


def test_delete_of_an_organizations_only_owner_is_409(api, db_session, admin_token, owner, org):
    response = api.delete(f"{BASE}/{owner.id}", token=admin_token)

    assert response.status == 409 and response.body["error"]["details"] == {"organizations": ["acme"]}
    assert db_session.get(User, owner.id) is not None
