"""/api/v1/users/me: the signed-in user's own account."""

from __future__ import annotations

import uuid

from flask import Blueprint

from app.api.context import (allow_api_key, current_actor, current_user, failed_password_checks_kept, load_body,
                             require_session)
from app.api.envelope import created, no_store, ok
from app.api.openapi import documented
from app.extensions import account_mail_limits, current_settings, db, token_denylist
from app.schemas.api_keys import ApiKeyIn, ApiKeyOut, IssuedApiKeyOut
from app.schemas.sessions import SessionsEndedOut
from app.schemas.users import (AccountDeleteIn, AccountEmailIn, ExternalIdentityOut, PasswordChangeIn, UserOut,
                               UserUpdateIn)
from app.security.api_keys import PROFILE_READ
from app.services import account_tokens, api_keys, identities, users

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")


@bp.get("/me")
@documented(summary="The current user's profile", tag="users", response=UserOut)
@require_session
@allow_api_key(PROFILE_READ)
def get_me():
    return ok(UserOut().dump(current_user()))


@bp.patch("/me")
@documented(summary="Update the current user's profile", tag="users", body=UserUpdateIn, response=UserOut)
@require_session
def update_me():
    data = load_body(UserUpdateIn())
    user = users.update_profile(db.session, actor=current_actor(), user=current_user(), **data)
    db.session.commit()
    return ok(UserOut().dump(user), message="Profile updated.")


@bp.delete("/me")
@documented(summary="Delete the current user's account (requires the password)", tag="users",
            body=AccountDeleteIn, errors=(409, 423, 429),
            description="Removes the user and their sessions, revokes their refresh tokens and denies their live "
                        "access tokens; audit events stay with the actor anonymised.")
@require_session
def delete_me():
    data = load_body(AccountDeleteIn())
    with failed_password_checks_kept():
        users.delete_account(db.session, actor=current_actor(), user=current_user(), settings=current_settings(),
                             denylist=token_denylist(), **data)
    db.session.commit()
    return ok(message="Account deleted.")


@bp.post("/me/password")
@documented(summary="Change the password; every other session ends", tag="users", body=PasswordChangeIn,
            response=SessionsEndedOut, errors=(423, 429))
@require_session
def change_password():
    data = load_body(PasswordChangeIn())
    with failed_password_checks_kept():
        ended = users.change_password(db.session, actor=current_actor(), user=current_user(),
                                      settings=current_settings(), **data)
    db.session.commit()
    return ok({"sessions_ended": ended}, message="Password changed.")


@bp.get("/me/identities")
@documented(summary="The identities at upstream providers linked to the current user's account", tag="users",
            response=ExternalIdentityOut, many=True)
@require_session
@allow_api_key(PROFILE_READ)
def list_identities():
    return ok(ExternalIdentityOut(many=True).dump(identities.list_identities(db.session, user=current_user())))


@bp.delete("/me/identities/<uuid:identity_id>")
@documented(summary="Unlink an identity from the current user's account", tag="users", errors=(404, 409),
            description="Refused with 409 when it is the account's last way to sign in (no password and no "
                        "other linked identity).")
@require_session
def unlink_identity(identity_id: uuid.UUID):
    identities.unlink_identity(db.session, actor=current_actor(), user=current_user(), identity_id=identity_id)
    db.session.commit()
    return ok(message="Identity unlinked.")


@bp.post("/me/email")
@documented(summary="Change the email: a link goes to the new address, and the change happens when it is opened",
            tag="users", body=AccountEmailIn, status=202, errors=(409, 429),
            description="The link (48 hours, single use) opens /email/verify, or its token goes to POST "
                        "/api/v1/auth/email/verify; the new address is then the account's, verified, every other "
                        "unused emailed link dies and the old address gets a notice. Asking again replaces the "
                        "pending change; a password change or reset cancels it. 409 when another account has the "
                        "address; 422 when it is already yours. Rate-limited as /password/forgot, sharing its "
                        "budgets (per client IP and per address typed).")
@account_mail_limits
@require_session
def change_email():
    data = load_body(AccountEmailIn())
    account_tokens.request_email_change(db.session, actor=current_actor(), user=current_user(),
                                        settings=current_settings(), **data)
    db.session.commit()
    return ok(status=202, message="A confirmation link was emailed to the new address; until it is opened, "
                                  "the email stays as it is.")


@bp.get("/me/api-keys")
@documented(summary="The current user's personal API keys (never the keys themselves)", tag="api-keys",
            response=ApiKeyOut, many=True, description="Unrevoked keys, expired ones included, newest first.")
@require_session
def list_api_keys():
    return ok(ApiKeyOut(many=True).dump(api_keys.list_keys(db.session, user=current_user())))


@bp.post("/me/api-keys")
@documented(summary="Create a personal API key (requires the password); the key is in this response only",
            tag="api-keys", body=ApiKeyIn, response=IssuedApiKeyOut, status=201, errors=(403, 423, 429),
            description="Send the key as `X-API-Key: <key>` on the /api/v1 operations whose `x-api-key-scope` "
                        "it holds; it acts as you there. Only a session creates keys (an API key here is 403).")
@require_session
def create_api_key():
    data = load_body(ApiKeyIn())
    with failed_password_checks_kept():
        issued = api_keys.create_key(db.session, actor=current_actor(), user=current_user(),
                                     settings=current_settings(), **data)
    db.session.commit()
    return no_store(created(IssuedApiKeyOut().dump(issued), message="API key created. Store it now: it is not "
                                                                    "shown again."))


@bp.delete("/me/api-keys/<uuid:key_id>")
@documented(summary="Revoke one of the current user's API keys; it stops working at once", tag="api-keys",
            response=ApiKeyOut, errors=(404,))
@require_session
def revoke_api_key(key_id: uuid.UUID):
    api_key = api_keys.revoke_key(db.session, actor=current_actor(), user=current_user(), key_id=key_id)
    db.session.commit()
    return ok(ApiKeyOut().dump(api_key), message="API key revoked.")
