"""services.access_tokens: which access tokens sign in to the organization endpoints of the API."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import Flask

from app import errors
from app.models import UserStatus
from app.services import access_tokens
from app.services.denylist import MemoryDenylist
from tests import factories


def authenticate(app: Flask, db_session, token: str, denied: MemoryDenylist | None = None):
    return access_tokens.authenticate_org_admin_token(
        db_session, token, settings=app.extensions["gatehouse.settings"], keys=app.extensions["gatehouse.keys"],
        denied=denied or MemoryDenylist())


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
