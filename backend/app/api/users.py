"""/api/v1/users/me: the signed-in user's own account."""

from __future__ import annotations

import uuid

from flask import Blueprint

from app.api.context import current_actor, current_user, load_body, require_session
from app.api.envelope import ok
from app.api.openapi import documented
from app.errors import AccountLocked, InvalidCredentials
from app.extensions import current_settings, db
from app.schemas.sessions import SessionsEndedOut
from app.schemas.users import AccountDeleteIn, ExternalIdentityOut, PasswordChangeIn, UserOut, UserUpdateIn
from app.services import identities, users

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")


@bp.get("/me")
@documented(summary="The current user's profile", tag="users", response=UserOut)
@require_session
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
            description="Removes the user and their sessions; audit events stay with the actor anonymised.")
@require_session
def delete_me():
    data = load_body(AccountDeleteIn())
    try:
        users.delete_account(db.session, actor=current_actor(), user=current_user(), settings=current_settings(),
                             **data)
    except (AccountLocked, InvalidCredentials):
        db.session.commit()  # the wrong password's failure count is kept (nothing else is written before)
        raise
    db.session.commit()
    return ok(message="Account deleted.")


@bp.post("/me/password")
@documented(summary="Change the password; every other session ends", tag="users", body=PasswordChangeIn,
            response=SessionsEndedOut, errors=(423, 429))
@require_session
def change_password():
    data = load_body(PasswordChangeIn())
    try:
        ended = users.change_password(db.session, actor=current_actor(), user=current_user(),
                                      settings=current_settings(), **data)
    except (AccountLocked, InvalidCredentials):
        db.session.commit()  # the wrong password's failure count is kept (nothing else is written before)
        raise
    db.session.commit()
    return ok({"sessions_ended": ended}, message="Password changed.")


@bp.get("/me/identities")
@documented(summary="The identities at upstream providers linked to the current user's account", tag="users",
            response=ExternalIdentityOut, many=True)
@require_session
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
