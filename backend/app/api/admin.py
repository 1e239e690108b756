"""/api/v1/admin: platform administrators manage accounts and read the whole platform's audit trail."""

from __future__ import annotations

import uuid

from flask import Blueprint

from app.api.context import current_actor, load_body, load_query, require_platform_admin
from app.api.envelope import created, ok, page
from app.api.openapi import documented
from app.extensions import current_settings, db, token_denylist
from app.schemas.admin import (AccountOverviewOut, AdminUserCreateIn, AdminUserListIn, AdminUserUpdateIn,
                               PlatformAuditEventListIn, PlatformAuditEventOut, SignInOut, SuspensionOut, UnlockOut)
from app.schemas.common import PageIn
from app.schemas.users import UserOut
from app.services import audit, platform_admin

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

SELF_AND_LAST_ADMIN = ("409 for yourself, and for the last active platform administrator (make another one "
                       "first).")


@bp.get("/users")
@documented(summary="List accounts, newest first", tag="admin", query=AdminUserListIn, response=UserOut, many=True,
            paginated=True, errors=(403,))
@require_platform_admin
def list_users():
    query = load_query(AdminUserListIn())
    items, total = platform_admin.list_users(db.session, **query)
    return page(UserOut(many=True).dump(items), total=total, page=query["page"], per_page=query["per_page"])


@bp.post("/users")
@documented(summary="Create an account; its owner is emailed a link to choose a password", tag="admin",
            body=AdminUserCreateIn, response=UserOut, status=201, errors=(403, 409),
            description="The account has no password until its owner uses the emailed reset link "
                        "(PASSWORD_RESET_TTL_SECONDS; POST .../password-reset sends another). 409 when the email "
                        "is taken.")
@require_platform_admin
def create_user():
    data = load_body(AdminUserCreateIn())
    user = platform_admin.create_user(db.session, actor=current_actor(), settings=current_settings(), **data)
    db.session.commit()
    return created(UserOut().dump(user), message="Account created; a link to choose a password was emailed.")


@bp.get("/users/<uuid:user_id>")
@documented(summary="One account with its organizations, live sessions and linked identities", tag="admin",
            response=AccountOverviewOut, errors=(403, 404))
@require_platform_admin
def get_user(user_id: uuid.UUID):
    return ok(AccountOverviewOut().dump(platform_admin.overview(db.session, user_id=user_id)))


@bp.patch("/users/<uuid:user_id>")
@documented(summary="Change an account's name, platform administration or email verification", tag="admin",
            body=AdminUserUpdateIn, response=UserOut, errors=(403, 404, 409),
            description="Demoting (is_platform_admin false) is " + SELF_AND_LAST_ADMIN)
@require_platform_admin
def update_user(user_id: uuid.UUID):
    data = load_body(AdminUserUpdateIn())
    user = platform_admin.update_user(db.session, actor=current_actor(), user_id=user_id, **data)
    db.session.commit()
    return ok(UserOut().dump(user), message="Account updated.")


@bp.delete("/users/<uuid:user_id>")
@documented(summary="Delete an account, as self-deletion does", tag="admin", errors=(403, 404, 409),
            description="The account leaves its organizations, its sessions go and its tokens are revoked; audit "
                        "events stay with it "
                        "anonymised. 409 when it is the only owner of an organization (details list them), and "
                        + SELF_AND_LAST_ADMIN)
@require_platform_admin
def delete_user(user_id: uuid.UUID):
    platform_admin.delete_user(db.session, actor=current_actor(), user_id=user_id, denylist=token_denylist())
    db.session.commit()
    return ok(message="Account deleted.")


@bp.post("/users/<uuid:user_id>/suspend")
@documented(summary="Suspend an account, ending everything it holds at once", tag="admin", response=SuspensionOut,
            errors=(403, 404, 409),
            description="Ends every session and revokes every refresh-token family; the live access tokens "
                        "issued with them or from codes are denied (introspection answers active=false, UserInfo "
                        "refuses them). The account cannot sign in until unsuspended. 409 when already "
                        "suspended, and " + SELF_AND_LAST_ADMIN)
@require_platform_admin
def suspend_user(user_id: uuid.UUID):
    suspension = platform_admin.suspend_user(db.session, actor=current_actor(), user_id=user_id,
                                             denylist=token_denylist())
    db.session.commit()
    return ok(SuspensionOut().dump(suspension), message="Account suspended.")


@bp.post("/users/<uuid:user_id>/unsuspend")
@documented(summary="Make a suspended account active again", tag="admin", response=UserOut,
            errors=(403, 404, 409),
            description="Sessions and tokens the suspension ended stay ended. 409 when the account is not "
                        "suspended.")
@require_platform_admin
def unsuspend_user(user_id: uuid.UUID):
    user = platform_admin.unsuspend_user(db.session, actor=current_actor(), user_id=user_id)
    db.session.commit()
    return ok(UserOut().dump(user), message="Account unsuspended.")


@bp.post("/users/<uuid:user_id>/unlock")
@documented(summary="Lift the sign-in locks on an account's email, from every address", tag="admin",
            response=UnlockOut, errors=(403, 404),
            description="Forgets the failed sign-ins counted for the email (LOGIN_MAX_FAILURES per address, "
                        "LOGIN_ACCOUNT_THROTTLE_FAILURES in all), so the owner can sign in again at once.")
@require_platform_admin
def unlock_user(user_id: uuid.UUID):
    cleared = platform_admin.unlock_user(db.session, actor=current_actor(), user_id=user_id,
                                         settings=current_settings())
    db.session.commit()
    return ok(UnlockOut().dump({"counters_cleared": cleared}), message="Sign-in locks lifted.")


@bp.post("/users/<uuid:user_id>/password-reset")
@documented(summary="Email the account's owner a password-reset link", tag="admin", status=202,
            errors=(403, 404, 409),
            description="The same link as /password/forgot sends, to the account's address only: the response "
                        "carries no token, and an administrator never sets or learns a password. 409 for a "
                        "suspended account.")
@require_platform_admin
def send_password_reset(user_id: uuid.UUID):
    platform_admin.send_password_reset(db.session, actor=current_actor(), user_id=user_id,
                                       settings=current_settings())
    db.session.commit()
    return ok(status=202, message="A password-reset link was emailed to the account's address.")


@bp.get("/users/<uuid:user_id>/login-history")
@documented(summary="An account's sign-ins and failed attempts, newest first", tag="admin", query=PageIn,
            response=SignInOut, many=True, paginated=True, errors=(403, 404),
            description="Read from the audit trail (auth.login events): method, result, reason, IP and user "
                        "agent. Attempts with an email no account has belong to nobody's history.")
@require_platform_admin
def login_history(user_id: uuid.UUID):
    query = load_query(PageIn())
    items, total = platform_admin.login_history(db.session, user_id=user_id, **query)
    return page(SignInOut(many=True).dump(items), total=total, page=query["page"], per_page=query["per_page"])


@bp.get("/audit-events")
@documented(summary="The whole platform's audit trail, newest first", tag="admin", query=PlatformAuditEventListIn,
            response=PlatformAuditEventOut, many=True, paginated=True, errors=(403,),
            description='Filters: action (exact, or a prefix ending in "." such as "user."), actor (a user id), '
                        "since and until (ISO 8601 with a timezone, both inclusive; until before since is 422), "
                        "organization_id, target_type and target_id. Every organization's events and the "
                        "platform's own.")
@require_platform_admin
def list_audit_events():
    query = load_query(PlatformAuditEventListIn())
    items, total = audit.list_platform_events(db.session, **query)
    return page(PlatformAuditEventOut(many=True).dump(items), total=total, page=query["page"],
                per_page=query["per_page"])
