"""Personal API keys: /api/v1/users/me/api-keys, and X-API-Key on the rest of /api/v1."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import ApiKey, AuditEvent, LoginThrottle, User, UserStatus
from app.models.base import utcnow
from app.security import api_keys as key_format
from app.security.tokens import hash_token
from tests import factories
from tests.api.routes import api_operations, collection_app, plain_rule
from tests.conftest import make_settings
from tests.factories import DEFAULT_PASSWORD, UserFactory

KEYS = "/api/v1/users/me/api-keys"
ME = "/api/v1/users/me"
KEY_FORMAT = re.compile(r"ghk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
ORG = "/api/v1/organizations/<org_id>"

# The scope each operation a key may call needs, written down here rather than read back from the
# code under test: a new operation that takes keys, or a weakened one, fails
# test_the_operations_that_take_keys_and_their_scopes. Every other /api operation refuses keys.
KEY_SCOPES: dict[tuple[str, str], str] = {
    ("GET", ME): "profile:read",
    ("GET", f"{ME}/identities"): "profile:read",
    ("GET", f"{ME}/organizations"): "organizations:read",
    ("POST", "/api/v1/organizations"): "organizations:write",
    ("GET", ORG): "organizations:read",
    ("PATCH", ORG): "organizations:write",
    ("GET", f"{ORG}/audit-events"): "organizations:read",
    ("GET", f"{ORG}/clients"): "organizations:read",
    ("POST", f"{ORG}/clients"): "organizations:write",
    ("GET", f"{ORG}/clients/<client_id>"): "organizations:read",
    ("PATCH", f"{ORG}/clients/<client_id>"): "organizations:write",
    ("DELETE", f"{ORG}/clients/<client_id>"): "organizations:write",
    ("POST", f"{ORG}/clients/<client_id>/secret"): "organizations:write",
    ("GET", f"{ORG}/domains"): "organizations:read",
    ("POST", f"{ORG}/domains"): "organizations:write",
    ("GET", f"{ORG}/domains/<domain_id>"): "organizations:read",
    ("PATCH", f"{ORG}/domains/<domain_id>"): "organizations:write",
    ("DELETE", f"{ORG}/domains/<domain_id>"): "organizations:write",
    ("POST", f"{ORG}/domains/<domain_id>/verify"): "organizations:write",
    ("GET", f"{ORG}/identity-providers"): "organizations:read",
    ("POST", f"{ORG}/identity-providers"): "organizations:write",
    ("GET", f"{ORG}/identity-providers/<provider_id>"): "organizations:read",
    ("PATCH", f"{ORG}/identity-providers/<provider_id>"): "organizations:write",
    ("DELETE", f"{ORG}/identity-providers/<provider_id>"): "organizations:write",
    ("GET", f"{ORG}/invitations"): "organizations:read",
    ("POST", f"{ORG}/invitations"): "organizations:write",
    ("DELETE", f"{ORG}/invitations/<invitation_id>"): "organizations:write",
    ("GET", f"{ORG}/members"): "organizations:read",
    ("POST", f"{ORG}/members"): "organizations:write",
    ("DELETE", f"{ORG}/members/<user_id>"): "organizations:write",
    ("PATCH", f"{ORG}/members/<user_id>/role"): "organizations:write",
    ("GET", f"{ORG}/roles"): "organizations:read",
    ("POST", f"{ORG}/roles"): "organizations:write",
    ("PATCH", f"{ORG}/roles/<role_id>"): "organizations:write",
    ("DELETE", f"{ORG}/roles/<role_id>"): "organizations:write",
}


def key_headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def audit_events(db_session, action: str) -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def create_body(**overrides) -> dict:
    return {"password": DEFAULT_PASSWORD, "name": "CI deploys", "scopes": ["profile:read"], **overrides}


# --- which operations take keys --------------------------------------------------------------


def test_the_operations_that_take_keys_and_their_scopes():
    app = collection_app()
    declared = {(op.method, plain_rule(op.rule)): op.view(app).api_key_scope
                for op in api_operations(app) if hasattr(op.view(app), "api_key_scope")}

    assert declared == KEY_SCOPES


def test_every_scope_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()

    assert all(f"`{scope}`" in readme for scope in key_format.SCOPES)


# --- create, list, revoke ----------------------------------------------------------------------


def test_create_returns_the_key_once_and_stores_only_prefix_and_hash(api, db_session, user, login):
    response = api.post(KEYS, token=login(user), json=create_body(scopes=["profile:read", "organizations:read"]))

    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"
    key = response.data["key"]
    assert KEY_FORMAT.fullmatch(key)
    assert key.startswith(f"ghk_{response.data['prefix']}_")
    row = db_session.get(ApiKey, uuid.UUID(response.data["id"]))
    assert (row.prefix, row.key_hash, row.scopes) == (response.data["prefix"], hash_token(key),
                                                       ["organizations:read", "profile:read"])
    assert key not in {row.name, row.prefix, row.key_hash}


def test_list_shows_the_keys_without_the_keys_themselves(api, db_session, user, login):
    token = login(user)
    created = api.post(KEYS, token=token, json=create_body()).data

    listed = api.get(KEYS, token=token)

    assert listed.status == 200
    [shown] = listed.data
    assert shown["id"] == created["id"] and shown["prefix"] == created["prefix"]
    assert "key" not in shown and "key_hash" not in shown
    assert created["key"] not in str(listed.body)


def test_a_new_key_authenticates_as_its_user(api, user, login):
    key = api.post(KEYS, token=login(user), json=create_body()).data["key"]

    response = api.get(ME, headers=key_headers(key))

    assert response.status == 200 and response.data["id"] == str(user.id)


def test_create_with_a_wrong_password_is_401_and_counted_as_a_failed_sign_in(api, db_session, user, login):
    response = api.post(KEYS, token=login(user), json=create_body(password="not the password"))

    assert response.status == 401
    assert db_session.scalars(select(ApiKey)).all() == []
    assert db_session.scalars(select(LoginThrottle)).all() != []


def test_create_for_an_account_without_a_password_is_401(api, db_session):
    federated = UserFactory(password_hash=None)

    response = api.post(KEYS, token=factories.session_token(federated), json=create_body())

    assert response.status == 401
    assert db_session.scalars(select(ApiKey)).all() == []


@pytest.mark.parametrize("overrides, field", [
    ({"scopes": ["admin"]}, "scopes"),
    ({"scopes": []}, "scopes"),
    ({"name": ""}, "name"),
    ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": "9999-12-31T23:59:59-01:00"}, "expires_at"),
    ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
], ids=["unknown-scope", "no-scope", "no-name", "past-expiry", "too-far-expiry", "naive-expiry"])
def test_create_with_invalid_fields_is_422(api, db_session, user, login, overrides, field):
    response = api.post(KEYS, token=login(user), json=create_body(**overrides))

    assert response.status == 422 and field in response.body["error"]["details"]
    assert db_session.scalars(select(ApiKey)).all() == []


def test_create_with_an_expiry_keeps_it(api, db_session, user, login):
    expires_at = (utcnow() + timedelta(days=30)).replace(microsecond=0)

    response = api.post(KEYS, token=login(user), json=create_body(expires_at=expires_at.isoformat()))

    assert response.status == 201
    assert db_session.get(ApiKey, uuid.UUID(response.data["id"])).expires_at == expires_at


def test_revoke_stops_the_key_at_once(api, db_session, user, login):
    row, key = factories.api_key(db_session, user)
    token = login(user)
    assert api.get(ME, headers=key_headers(key)).status == 200

    response = api.delete(f"{KEYS}/{row.id}", token=token)

    assert response.status == 200 and response.data["id"] == str(row.id)
    refused = api.get(ME, headers=key_headers(key))
    assert refused.status == 401 and "revoked" in refused.body["message"]
    assert api.get(KEYS, token=token).data == []


def test_revoking_another_users_key_is_404_and_leaves_it_working(api, db_session, user, login):
    other = UserFactory()
    row, key = factories.api_key(db_session, other)

    response = api.delete(f"{KEYS}/{row.id}", token=login(user))

    assert response.status == 404 and response.error_type == "NOT_FOUND"
    db_session.refresh(row)
    assert row.revoked_at is None
    assert api.get(ME, headers=key_headers(key)).status == 200


def test_revoking_a_revoked_or_unknown_key_is_404(api, db_session, user, login):
    row, _ = factories.api_key(db_session, user)
    token = login(user)
    assert api.delete(f"{KEYS}/{row.id}", token=token).status == 200

    assert api.delete(f"{KEYS}/{row.id}", token=token).status == 404
    assert api.delete(f"{KEYS}/{uuid.uuid4()}", token=token).status == 404


def test_another_users_keys_are_not_listed(api, db_session, user, login):
    factories.api_key(db_session, UserFactory())

    assert api.get(KEYS, token=login(user)).data == []


# --- scopes ------------------------------------------------------------------------------------


def test_a_key_outside_its_scopes_is_403_naming_the_missing_scope(api, db_session, user):
    _, key = factories.api_key(db_session, user, ["profile:read"])

    response = api.get(f"{ME}/organizations", headers=key_headers(key))

    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"
    assert "organizations:read" in response.body["message"]
    assert response.body["error"]["details"] == {"required_scope": "organizations:read"}


@pytest.mark.parametrize("method, path, body", [
    ("POST", f"{ME}/password", {"current_password": DEFAULT_PASSWORD, "new_password": "a brand new passphrase"}),
    ("DELETE", ME, {"password": DEFAULT_PASSWORD}),
    ("POST", KEYS, create_body()),
    ("GET", KEYS, None),
    ("PATCH", ME, {"name": "Changed by a key"}),
    ("POST", f"{ME}/email", {"email": "elsewhere@example.com"}),
    ("POST", "/api/v1/auth/logout-all", None),
], ids=["password-change", "account-deletion", "key-creation", "key-list", "profile-update", "email-change",
        "logout-all"])
def test_a_key_with_every_scope_is_refused_where_only_a_session_may_act(api, db_session, user, method, path, body):
    _, key = factories.api_key(db_session, user)
    password_hash = user.password_hash

    response = api.request(method, path, headers=key_headers(key), json=body)

    assert response.status == 403 and response.error_type == "PERMISSION_DENIED"
    assert response.body["error"]["details"] == {"required_scope": None}
    db_session.expire_all()
    assert db_session.get(User, user.id).password_hash == password_hash
    assert db_session.get(User, user.id).name == user.name
    assert len(db_session.scalars(select(ApiKey)).all()) == 1


def test_a_platform_administrators_key_is_refused_by_platform_endpoints(api, db_session):
    operator = UserFactory(is_platform_admin=True)
    _, key = factories.api_key(db_session, operator)

    response = api.get("/api/v1/clients", headers=key_headers(key))

    assert response.status == 403 and response.body["error"]["details"] == {"required_scope": None}


def test_a_key_acts_in_its_users_organizations_within_their_role(api, db_session, org, member):
    _, key = factories.api_key(db_session, member)
    path = f"/api/v1/organizations/{org.id}"

    assert api.get(path, headers=key_headers(key)).status == 200
    refused = api.patch(path, headers=key_headers(key), json={"name": "Renamed"})
    assert refused.status == 403 and refused.body["error"]["details"] == {}  # the role's refusal, not the key's


def test_an_owners_key_with_write_scope_changes_the_organization(api, db_session, org, owner):
    _, key = factories.api_key(db_session, owner, ["organizations:write"])

    response = api.patch(f"/api/v1/organizations/{org.id}", headers=key_headers(key), json={"name": "Renamed"})

    assert response.status == 200 and response.data["name"] == "Renamed"


def test_an_outsiders_key_finds_no_organization(api, db_session, org):
    _, key = factories.api_key(db_session, UserFactory())

    response = api.get(f"/api/v1/organizations/{org.id}/members", headers=key_headers(key))

    assert response.status == 404


def test_no_key_deletes_an_organization(api, db_session, org, owner):
    _, key = factories.api_key(db_session, owner)

    response = api.delete(f"/api/v1/organizations/{org.id}", headers=key_headers(key))

    assert response.status == 403 and response.body["error"]["details"] == {"required_scope": None}


# --- refused keys ------------------------------------------------------------------------------


def test_an_expired_key_is_401_and_its_use_audited(api, db_session, user):
    row, key = factories.api_key(db_session, user, expires_at=utcnow() - timedelta(seconds=1))

    response = api.get(ME, headers=key_headers(key), environ_base={"REMOTE_ADDR": "192.0.2.44"})

    assert response.status == 401 and "expired" in response.body["message"]
    assert "WWW-Authenticate" in response.headers
    [event] = audit_events(db_session, "api_key.used_after_expiry")
    assert (event.result, event.actor_user_id, event.target_id, event.ip) == ("failure", user.id, str(row.id),
                                                                                "192.0.2.44")


@pytest.mark.parametrize("presented", [
    "not-a-key",
    "ghk_000000000000_" + "A" * 43,
], ids=["malformed", "unknown-prefix"])
def test_an_unknown_key_is_401(api, presented):
    response = api.get(ME, headers=key_headers(presented))

    assert response.status == 401 and response.error_type == "AUTHENTICATION_ERROR"


def test_a_key_with_a_known_prefix_and_a_wrong_secret_is_401(api, db_session, user):
    row, key = factories.api_key(db_session, user)
    forged = f"ghk_{row.prefix}_" + "A" * 43
    assert forged != key

    assert api.get(ME, headers=key_headers(forged)).status == 401


def test_a_suspended_users_key_is_refused(api, db_session, user):
    _, key = factories.api_key(db_session, user)
    assert api.get(ME, headers=key_headers(key)).status == 200
    user.status = UserStatus.SUSPENDED
    db_session.commit()

    response = api.get(ME, headers=key_headers(key))

    assert response.status == 401 and "not active" in response.body["message"]


def test_a_deleted_users_keys_are_deleted_with_them(api, db_session, user, login):
    _, key = factories.api_key(db_session, user)

    assert api.delete(ME, token=login(user), json={"password": DEFAULT_PASSWORD}).status == 200

    assert db_session.scalars(select(ApiKey)).all() == []
    assert api.get(ME, headers=key_headers(key)).status == 401


@pytest.mark.parametrize("query", ["api_key={key}", "apikey={key}", "X-Api-Key=anything", "q={key}"],
                         ids=["api_key", "apikey", "x-api-key-name", "key-in-another-parameter"])
def test_a_key_in_the_query_string_is_refused_even_beside_a_valid_session(api, db_session, user, login, query):
    _, key = factories.api_key(db_session, user)

    response = api.get(f"{ME}?{query.format(key=key)}", token=login(user))

    assert response.status == 400 and response.error_type == "BAD_REQUEST"
    assert "query string" in response.body["message"]


def test_a_key_in_the_query_string_is_refused_on_organization_endpoints(api, db_session, org, owner):
    _, key = factories.api_key(db_session, owner)

    response = api.get(f"/api/v1/organizations/{org.id}?api_key={key}")

    assert response.status == 400


def test_a_key_in_the_query_string_does_not_authenticate(api, db_session, user):
    _, key = factories.api_key(db_session, user)

    response = api.get(f"{ME}?api_key={key}")

    assert response.status == 400
    assert db_session.scalars(select(ApiKey.last_used_at)).one() is None


def test_a_key_beside_a_bearer_token_is_400(api, db_session, user, login):
    _, key = factories.api_key(db_session, user)

    response = api.get(ME, token=login(user), headers=key_headers(key))

    assert response.status == 400


# --- last use ----------------------------------------------------------------------------------


def test_the_first_use_is_recorded_with_its_address(api, db_session, user):
    row, key = factories.api_key(db_session, user)

    api.get(ME, headers=key_headers(key), environ_base={"REMOTE_ADDR": "198.51.100.7"})

    db_session.refresh(row)
    assert row.last_used_at is not None and row.last_used_ip == "198.51.100.7"


def test_a_use_within_a_minute_of_the_recorded_one_is_not_recorded(api, db_session, user):
    row, key = factories.api_key(db_session, user)
    recorded = utcnow() - timedelta(seconds=30)
    row.last_used_at, row.last_used_ip = recorded, "198.51.100.7"
    db_session.commit()

    api.get(ME, headers=key_headers(key), environ_base={"REMOTE_ADDR": "198.51.100.8"})

    db_session.refresh(row)
    assert (row.last_used_at, row.last_used_ip) == (recorded, "198.51.100.7")


def test_a_use_a_minute_after_the_recorded_one_is_recorded(api, db_session, user):
    row, key = factories.api_key(db_session, user)
    recorded = utcnow() - timedelta(seconds=61)
    row.last_used_at, row.last_used_ip = recorded, "198.51.100.7"
    db_session.commit()

    api.get(ME, headers=key_headers(key), environ_base={"REMOTE_ADDR": "198.51.100.8"})

    db_session.refresh(row)
    assert row.last_used_at > recorded and row.last_used_ip == "198.51.100.8"


def test_a_use_refused_for_its_scope_still_counts_as_a_use(api, db_session, user):
    row, key = factories.api_key(db_session, user, ["profile:read"])

    assert api.get(f"{ME}/organizations", headers=key_headers(key)).status == 403

    db_session.refresh(row)
    assert row.last_used_at is not None


# --- audit -------------------------------------------------------------------------------------


def test_create_and_revoke_are_audited_without_the_key(api, db_session, user, login):
    token = login(user)
    created = api.post(KEYS, token=token, json=create_body(scopes=["organizations:read"]))
    api.delete(f"{KEYS}/{created.data['id']}", token=token)

    [made] = audit_events(db_session, "api_key.created")
    [revoked] = audit_events(db_session, "api_key.revoked")
    assert (made.actor_user_id, made.target_type, made.target_id) == (user.id, "api_key", created.data["id"])
    assert made.details == {"name": "CI deploys", "scopes": ["organizations:read"], "expires_at": None}
    assert made.request_id == created.headers["X-Request-ID"]
    assert (revoked.actor_user_id, revoked.target_id) == (user.id, created.data["id"])
    assert created.data["key"] not in str(made.details)


# --- failed presentations are rate-limited per IP ----------------------------------------------


class TestFailedKeyBudget:
    @pytest.fixture
    def settings(self, database_url):
        return make_settings(database_url, RATELIMIT_API_KEY_FAILURES="3 per minute")

    def test_the_fourth_refused_key_in_a_minute_is_429_with_retry_after(self, api):
        statuses = [api.get(ME, headers=key_headers(f"wrong-{n}")).status for n in range(3)]

        response = api.get(ME, headers=key_headers("wrong-3"))

        assert statuses == [401] * 3
        assert response.status == 429 and response.error_type == "RATE_LIMITED"
        assert int(response.headers["Retry-After"]) > 0

    def test_past_the_budget_even_a_good_key_from_that_ip_waits(self, api, db_session, user):
        _, key = factories.api_key(db_session, user)
        for n in range(3):
            api.get(ME, headers=key_headers(f"wrong-{n}"))

        assert api.get(ME, headers=key_headers(key)).status == 429

    def test_accepted_keys_spend_nothing(self, api, db_session, user):
        _, key = factories.api_key(db_session, user)
        for _ in range(5):
            assert api.get(ME, headers=key_headers(key)).status == 200

        statuses = [api.get(ME, headers=key_headers(f"wrong-{n}")).status for n in range(3)]

        assert statuses == [401] * 3

    def test_another_ip_keeps_its_own_budget(self, api):
        for n in range(4):
            api.get(ME, headers=key_headers(f"wrong-{n}"))

        response = api.get(ME, headers=key_headers("wrong"), environ_base={"REMOTE_ADDR": "10.0.0.2"})

        assert response.status == 401

    def test_requests_without_a_key_are_not_limited(self, api, user, login):
        for n in range(4):
            api.get(ME, headers=key_headers(f"wrong-{n}"))

        assert api.get(ME, token=login(user)).status == 200
        assert api.get(ME, token="not-a-session").status == 401
