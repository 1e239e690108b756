"""/api/v1/users/me/login-history: the signed-in user's own sign-ins and failed attempts."""

from __future__ import annotations

from flask import Blueprint

from app.api.context import current_user, load_query, require_session
from app.api.envelope import page
from app.api.openapi import documented
from app.extensions import db
from app.schemas.admin import SignInOut
from app.schemas.common import PageIn
from app.services import audit

bp = Blueprint("login_history", __name__, url_prefix="/api/v1/users/me/login-history")


@bp.get("")
@documented(summary="The current user's sign-ins and failed attempts, newest first", tag="users", query=PageIn,
            response=SignInOut, many=True, paginated=True,
            description="Read from the audit trail (auth.login events): method, result, reason, IP and user agent.")
@require_session
def list_sign_ins():
    query = load_query(PageIn())
    items, total = audit.list_sign_ins(db.session, user_id=current_user().id, **query)
    return page(SignInOut(many=True).dump(items), total=total, page=query["page"], per_page=query["per_page"])
