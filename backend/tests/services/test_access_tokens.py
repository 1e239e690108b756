"""services.access_tokens: which access tokens sign in to the organization endpoints of the API."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import Flask

from app import errors
from app.models import UserStatus
from app.services import access_tokens
from app.stores.denylist import MemoryDenylist
from app.stores.keysets import VerifiedTokens
from tests import factories


def authenticate(app: Flask, db_session, token: str, denied: MemoryDenylist | None = None):
    return access_tokens.authenticate_org_admin_token(
        db_session, token, settings=app.extensions["gatehouse.settings"], keys=app.extensions["gatehouse.keys"],
        verified_tokens=VerifiedTokens(), denied=denied or MemoryDenylist())


def test_an_org_admin_token_gives_its_user_and_organization(app, db_session, org, owner):
    user, org_id = authenticate(app, db_session, factories.access_token(app, user=owner, organization=org))

    assert user.id == owner.id
    assert org_id == str(org.id)


@pytest.mark.parametrize("case", ["no org:admin scope", "revoked", "expired", "suspended user", "client's own token"])
def test_other_tokens_are_refused(app, db_session, org, owner, case):
    denied = MemoryDenylist()
    options = {"user": owner, "organization": org, "jti": "the-jti"}
    if case == "no org:admin scope":
        options["scope"] = "openid organization"
    elif case == "revoked":
        denied.deny("the-jti", 2**31)
    elif case == "expired":
        options["expires_in"] = -1
    elif case == "suspended user":
        owner.status = UserStatus.SUSPENDED
        db_session.commit()
    token = factories.access_token(app, **options)
    if case == "client's own token":
        # Client credentials: `sub` is the client, not a user (RFC 9068 §2.2).
        token = factories.access_token(app, user=SimpleNamespace(id="test-client"), organization=org)

    with pytest.raises(errors.AuthenticationRequired):
        authenticate(app, db_session, token, denied)


# --- verify_access_token keeps verified signatures (introspection sees the same token again and again) ---

class PublishedKeys:
    """The keys a KeyStore publishes, which a test can change."""

    def __init__(self, keys: list) -> None:
        self.keys = keys

    def published(self) -> list:
        return self.keys


def verify(app: Flask, token: str, *, keys=None, verified_tokens: VerifiedTokens | None = None,
           denied: MemoryDenylist | None = None, now: int | None = None):
    return access_tokens.verify_access_token(
        token, settings=app.extensions["gatehouse.settings"], keys=keys or app.extensions["gatehouse.keys"],
        verified_tokens=verified_tokens or app.extensions["gatehouse.stores"].verified_tokens,
        denied=denied or MemoryDenylist(), now=now)


def test_a_token_verified_before_is_still_checked_for_expiry_and_revocation(app, owner):
    """RFC 7662 §2.2: active only while unexpired and unrevoked, however often it was seen active."""
    token, denied = factories.access_token(app, user=owner, jti="the-jti"), MemoryDenylist()
    first = verify(app, token, denied=denied)
    assert first is not None and verify(app, token, denied=denied) == first

    assert verify(app, token, denied=denied, now=first.exp) is None
    denied.deny("the-jti", first.exp)
    assert verify(app, token, denied=denied) is None


def test_a_token_stops_verifying_when_its_key_leaves_the_jwks(app, owner):
    token = factories.access_token(app, user=owner)
    kid = app.extensions["gatehouse.keys"].signing_key("RS256").kid
    keys = PublishedKeys(app.extensions["gatehouse.keys"].published())
    assert verify(app, token, keys=keys) is not None

    keys.keys = [key for key in keys.keys if key.kid != kid]
    assert keys.keys  # other keys stay published
    assert verify(app, token, keys=keys) is None


def test_each_caller_gets_claims_of_its_own(app, owner):
    token = factories.access_token(app, user=owner, scope="openid")
    verify(app, token).claims["scope"] = "openid org:admin"
    assert verify(app, token).claims["scope"] == "openid"


def test_the_verified_tokens_kept_are_bounded(app, owner):
    verified_tokens = VerifiedTokens(kept=2)
    tokens = [factories.access_token(app, user=owner) for _ in range(3)]
    for token in tokens:
        assert verify(app, token, verified_tokens=verified_tokens) is not None
    published = verified_tokens.published(tuple(sorted(k.kid for k in app.extensions["gatehouse.keys"].published())),
                                          load=lambda: pytest.fail("the published keys were read again"))
    assert list(published.verified) == tokens[1:]  # the oldest went first


@pytest.mark.parametrize("typ", ["JWT", "logout+jwt"])
def test_a_jwt_of_ours_that_is_no_access_token_is_refused_every_time(app, owner, typ):
    """RFC 9068 §4 and RFC 8725 §3.11: ID Tokens and other JWTs are signed with the same keys; only
    typ at+jwt makes an access token, and a refusal is not turned into a cached success."""
    token = factories.access_token(app, user=owner, typ=typ)
    assert verify(app, token) is None
    assert verify(app, token) is None
    assert verify(app, factories.access_token(app, user=owner)) is not None  # the control: typ at+jwt


def test_a_token_of_our_key_for_another_issuer_is_refused_every_time(app, owner):
    """RFC 9068 §4: the iss claim must be this server's (a key shared with another deployment signs
    nothing that passes here), checked on every call, not only before a signature is kept."""
    token = factories.access_token(app, user=owner, issuer="https://other-deployment.example.test")
    assert verify(app, token) is None
    assert verify(app, token) is None
    assert verify(app, factories.access_token(app, user=owner)) is not None  # the control: our issuer
