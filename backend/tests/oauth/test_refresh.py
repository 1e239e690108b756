"""/oauth2/token with grant_type=refresh_token: issuance, rotation, reuse detection, grace window, races."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from app.models import RefreshToken, User
from app.security.tokens import hash_token
from tests.oauth.helpers import audit_events, verify_jwt

OFFLINE = "openid profile email offline_access"


def refresh(token_request, registered, refresh_token: str, **form: str):
    return token_request(registered, grant_type="refresh_token", refresh_token=refresh_token, **form)


def assert_invalid_grant(response) -> None:
    """RFC 6749 §5.2: invalid_grant (the refresh token is invalid, expired, revoked or was issued to another client)."""
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "invalid_grant"
    assert response.headers["Cache-Control"] == "no-store"


def family_rows(db_session) -> list[RefreshToken]:
    return list(db_session.scalars(select(RefreshToken).order_by(RefreshToken.created_at)))


# --- issuance ---------------------------------------------------------------------------

def test_no_refresh_token_without_offline_access(obtain_tokens, web_client, db_session):
    """OIDC Core §11: refresh tokens for offline access are issued only when offline_access was granted."""
    tokens = obtain_tokens(web_client, scope="openid profile email")
    assert "refresh_token" not in tokens
    assert family_rows(db_session) == []


def test_no_refresh_token_for_first_party_client_without_offline_access(obtain_tokens, register, db_session):
    """OIDC Core §11: the operator default (FIRST_PARTY_REFRESH_WITHOUT_OFFLINE_ACCESS off) still requires it."""
    first_party = register(redirect_uris=["https://first.example.com/cb"], first_party=True)
    assert "refresh_token" not in obtain_tokens(first_party, scope="openid profile")


def test_refresh_token_with_offline_access(obtain_tokens, web_client, db_session):
    """OIDC Core §11 and RFC 6749 §1.5: offline_access yields a refresh token, stored hashed."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    [row] = family_rows(db_session)
    assert row.token_hash == hash_token(tokens["refresh_token"])
    assert row.scope == OFFLINE
    assert row.rotated_at is None and row.revoked_at is None


def test_no_refresh_token_for_a_client_without_the_grant(register, obtain_tokens, db_session):
    """RFC 6749 §6: a client not registered for refresh_token gets none, even with offline_access."""
    no_refresh = register(redirect_uris=["https://norefresh.example.com/cb"], grant_types=["authorization_code"])
    assert "refresh_token" not in obtain_tokens(no_refresh, scope=OFFLINE)


# --- rotation -------------------------------------------------------------------------

def test_refresh_rotates_the_refresh_token(obtain_tokens, token_request, web_client, client, user, db_session):
    """RFC 6749 §6 (a new access token and, here, a new refresh token) and RFC 9700 §4.14.2 (rotation);
    the new access token keeps the subject (RFC 9068 §2.2)."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    response = refresh(token_request, web_client, tokens["refresh_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]
    assert body["token_type"] == "Bearer"
    assert body["scope"] == OFFLINE
    claims = verify_jwt(client, body["access_token"]).claims
    assert claims["sub"] == str(user.id)
    assert claims["client_id"] == web_client.client_id
    assert claims["scope"] == OFFLINE

    old, new = family_rows(db_session)
    assert old.rotated_at is not None and old.revoked_at is None
    assert new.family_id == old.family_id
    assert new.token_hash == hash_token(body["refresh_token"])
    assert new.access_token_jti == claims["jti"]


def test_the_rotated_refresh_token_no_longer_works(obtain_tokens, token_request, web_client):
    """RFC 9700 §4.14.2: after rotation the previous refresh token is invalid."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    assert refresh(token_request, web_client, tokens["refresh_token"]).status_code == 200
    assert_invalid_grant(refresh(token_request, web_client, tokens["refresh_token"]))


def test_public_client_refreshes_with_client_id_only(obtain_tokens, token_request, spa_client):
    """RFC 6749 §6 and §3.2.1: a public client identifies itself with client_id; rotation protects it
    (RFC 9700 §4.14.2)."""
    tokens = obtain_tokens(spa_client, scope=OFFLINE)
    response = refresh(token_request, spa_client, tokens["refresh_token"])
    assert response.status_code == 200
    assert response.get_json()["refresh_token"] != tokens["refresh_token"]


def test_reusing_a_rotated_refresh_token_revokes_the_family(obtain_tokens, token_request, web_client, introspect,
                                                            db_session):
    """RFC 9700 §4.14.2: presenting an invalidated refresh token revokes the active one of its family;
    every access token the family issued is rejected by introspection (RFC 7662 §2.2). Audited."""
    first = obtain_tokens(web_client, scope=OFFLINE)
    second = refresh(token_request, web_client, first["refresh_token"]).get_json()
    third = refresh(token_request, web_client, second["refresh_token"]).get_json()
    for access_token in (first["access_token"], second["access_token"], third["access_token"]):
        assert introspect(web_client, access_token)["active"] is True

    assert_invalid_grant(refresh(token_request, web_client, first["refresh_token"]))

    assert_invalid_grant(refresh(token_request, web_client, third["refresh_token"]))
    for access_token in (first["access_token"], second["access_token"], third["access_token"]):
        assert introspect(web_client, access_token) == {"active": False}
    assert introspect(web_client, third["refresh_token"]) == {"active": False}
    assert all(row.revoked_at is not None for row in family_rows(db_session))
    [event] = audit_events(db_session, "oauth.refresh_token_reused")
    assert event.result == "failure"
    assert event.target_id == str(family_rows(db_session)[0].family_id)
    assert event.details["client_id"] == web_client.client_id
    assert event.details["refresh_tokens_revoked"] == 3


def test_refresh_token_of_another_client_is_invalid_grant(obtain_tokens, token_request, web_client, register,
                                                          db_session):
    """RFC 6749 §6 and §10.4: the refresh token is bound to the client it was issued to."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    other = register(name="Other", redirect_uris=["https://other.example.com/cb"])
    assert_invalid_grant(refresh(token_request, other, tokens["refresh_token"]))
    assert refresh(token_request, web_client, tokens["refresh_token"]).status_code == 200


def test_unknown_refresh_token_is_invalid_grant(token_request, web_client):
    """RFC 6749 §5.2 (invalid_grant)."""
    assert_invalid_grant(refresh(token_request, web_client, "not-a-refresh-token"))


def test_missing_refresh_token_is_invalid_request(token_request, web_client):
    """RFC 6749 §6 (refresh_token REQUIRED) and §5.2 (invalid_request)."""
    response = token_request(web_client, grant_type="refresh_token")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.settings(REFRESH_TOKEN_LIFETIME=0)
def test_expired_refresh_token_is_invalid_grant(obtain_tokens, token_request, web_client):
    """RFC 6749 §5.2 (invalid_grant: expired)."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    assert_invalid_grant(refresh(token_request, web_client, tokens["refresh_token"]))


def test_refresh_for_a_suspended_user_is_invalid_grant(obtain_tokens, token_request, web_client, user, db_session):
    """RFC 6749 §5.2 (invalid_grant: the grant was revoked) — the user may no longer sign in."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    db_session.get(User, user.id).status = "suspended"
    db_session.commit()
    assert_invalid_grant(refresh(token_request, web_client, tokens["refresh_token"]))


# --- scope ----------------------------------------------------------------------------

def test_narrower_scope_is_allowed_and_the_grant_keeps_its_scope(obtain_tokens, token_request, web_client, client):
    """RFC 6749 §6: the requested scope may be narrower; omitting it means the original scope."""
    tokens = obtain_tokens(web_client, scope=OFFLINE)
    narrowed = refresh(token_request, web_client, tokens["refresh_token"], scope="openid email")
    assert narrowed.status_code == 200
    body = narrowed.get_json()
    assert body["scope"] == "openid email"
    assert verify_jwt(client, body["access_token"]).claims["scope"] == "openid email"

    full = refresh(token_request, web_client, body["refresh_token"]).get_json()
    assert full["scope"] == OFFLINE


@pytest.mark.parametrize("scope", ["openid profile email offline_access invoices:read", "openid address"],
                         ids=["client-scope-not-granted", "unknown"])
def test_wider_scope_is_invalid_scope(obtain_tokens, token_request, web_client, db_session, scope):
    """RFC 6749 §6: the requested scope MUST NOT include any scope not originally granted (invalid_scope, §5.2)."""
    tokens = obtain_tokens(web_client, scope="openid email offline_access")
    response = refresh(token_request, web_client, tokens["refresh_token"], scope=scope)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"
    [row] = family_rows(db_session)
    assert row.rotated_at is None  # nothing was spent
    assert refresh(token_request, web_client, tokens["refresh_token"]).status_code == 200


# --- the grace window ------------------------------------------------------------------

@pytest.mark.settings(REFRESH_REUSE_GRACE_SECONDS=30)
def test_grace_window_returns_the_same_successor(obtain_tokens, token_request, web_client, introspect, db_session):
    """RFC 9700 §4.14.2 (rotation) with a short grace window: the immediately previous refresh token,
    presented again, gets the SAME successor and revokes nothing."""
    first = obtain_tokens(web_client, scope=OFFLINE)
    second = refresh(token_request, web_client, first["refresh_token"]).get_json()
    retry = refresh(token_request, web_client, first["refresh_token"])
    assert retry.status_code == 200
    assert retry.get_json()["refresh_token"] == second["refresh_token"]
    issued = [row for row in family_rows(db_session)
              if row.token_hash in {hash_token(first["refresh_token"]), hash_token(second["refresh_token"])}]
    assert len(issued) == 2
    assert all(row.revoked_at is None for row in issued)
    assert len({row.family_id for row in family_rows(db_session)}) == 1
    assert audit_events(db_session, "oauth.refresh_token_reused") == []
    assert introspect(web_client, second["access_token"])["active"] is True
    assert refresh(token_request, web_client, second["refresh_token"]).status_code == 200


@pytest.mark.settings(REFRESH_REUSE_GRACE_SECONDS=30)
def test_grace_window_covers_only_the_immediately_previous_token(obtain_tokens, token_request, web_client,
                                                                 introspect, db_session):
    """RFC 9700 §4.14.2: a token two rotations back is reuse, even inside the grace window; the family
    is revoked, including access tokens handed out by a grace retry."""
    first = obtain_tokens(web_client, scope=OFFLINE)
    second = refresh(token_request, web_client, first["refresh_token"]).get_json()
    grace_retry = refresh(token_request, web_client, first["refresh_token"]).get_json()
    third = refresh(token_request, web_client, second["refresh_token"]).get_json()

    assert_invalid_grant(refresh(token_request, web_client, first["refresh_token"]))

    assert_invalid_grant(refresh(token_request, web_client, third["refresh_token"]))
    for tokens in (first, second, grace_retry, third):
        assert introspect(web_client, tokens["access_token"]) == {"active": False}
    assert len(audit_events(db_session, "oauth.refresh_token_reused")) == 1


def test_without_grace_window_a_second_use_is_reuse(obtain_tokens, token_request, web_client, db_session):
    """RFC 9700 §4.14.2 with REFRESH_REUSE_GRACE_SECONDS=0 (the default): any second use revokes the family."""
    first = obtain_tokens(web_client, scope=OFFLINE)
    second = refresh(token_request, web_client, first["refresh_token"]).get_json()
    assert_invalid_grant(refresh(token_request, web_client, first["refresh_token"]))
    assert_invalid_grant(refresh(token_request, web_client, second["refresh_token"]))
    assert len(audit_events(db_session, "oauth.refresh_token_reused")) == 1


# --- concurrent refreshes ---------------------------------------------------------------

def _race(app, registered, refresh_token: str) -> list[tuple[int, dict]]:
    """Two requests with the same refresh token at the same moment, each from its own test client
    (and so its own app context, session and connection); the test holds no app context."""
    barrier = threading.Barrier(2)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def one() -> None:
        http = app.test_client()
        kwargs = registered.authenticate({"grant_type": "refresh_token", "refresh_token": refresh_token})
        barrier.wait(timeout=10)
        response = http.post("/oauth2/token", **kwargs)
        with lock:
            results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert len(results) == 2
    return results


def test_concurrent_refreshes_without_grace_let_exactly_one_win(app, obtain_tokens, web_client, db_session):
    """RFC 9700 §4.14.2: a refresh token is single-use even under concurrency: of two simultaneous
    uses exactly one succeeds (the other is reuse)."""
    for _ in range(5):
        tokens = obtain_tokens(web_client, scope=OFFLINE)
        db_session.commit()  # hold no transaction while the threads run
        results = _race(app, web_client, tokens["refresh_token"])
        statuses = sorted(status for status, _ in results)
        assert statuses == [200, 400], results
        assert [body["error"] for status, body in results if status == 400] == ["invalid_grant"]


@pytest.mark.settings(REFRESH_REUSE_GRACE_SECONDS=30)
def test_concurrent_refreshes_within_grace_both_get_the_same_successor(app, obtain_tokens, web_client, db_session):
    """RFC 9700 §4.14.2 with a grace window: two simultaneous refreshes (two tabs) both succeed and
    receive the same new refresh token; the family stays valid."""
    for _ in range(5):
        tokens = obtain_tokens(web_client, scope=OFFLINE)
        db_session.commit()
        results = _race(app, web_client, tokens["refresh_token"])
        assert [status for status, _ in results] == [200, 200], results
        successors = {body["refresh_token"] for _, body in results}
        assert len(successors) == 1
        assert successors != {tokens["refresh_token"]}
        [successor] = successors
        row = db_session.scalar(select(RefreshToken).where(RefreshToken.token_hash == hash_token(successor)))
        assert row.revoked_at is None and row.rotated_at is None
    assert audit_events(db_session, "oauth.refresh_token_reused") == []

