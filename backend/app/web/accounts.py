"""Account recovery pages: ask for a password-reset email, then set a new password from its link.

Like every page, these are `Cache-Control: no-store` (security/headers.py) and send
`Referrer-Policy: no-referrer` (the reset page's URL carries the link's token). The forgot
page answers the same whether or not the address has an account.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from app.errors import AppError, ValidationFailed
from app.extensions import account_mail_limits, csrf, current_settings, db, token_denylist
from app.models import AccountTokenPurpose
from app.request_context import request_actor
from app.security import passwords
from app.services import account_tokens

bp = Blueprint("account_pages", __name__, template_folder="templates")


@bp.get("/password/forgot")
def forgot_password_form():
    return render_template("password_forgot.html")


@bp.post("/password/forgot")
@account_mail_limits
def forgot_password():
    csrf.protect()
    account_tokens.request_password_reset(db.session, actor=request_actor(), email=request.form.get("email", ""),
                                          settings=current_settings())
    db.session.commit()
    return render_template("password_forgot_sent.html")


def _reset_page(token: str, *, field_errors: dict | None = None, status: int = 200) -> Response:
    return Response(render_template("password_reset.html", token=token, field_errors=field_errors or {},
                                    password_min_length=passwords.MIN_LENGTH), status=status)


def _unusable_link_page() -> Response:
    return Response(render_template("password_reset_unusable.html", message=account_tokens.LinkUnusable.message),
                    status=400)


@bp.get(account_tokens.RESET_PATH)
def reset_password_form():
    token = request.args.get("token", "")
    if account_tokens.find_live_link(db.session, purpose=AccountTokenPurpose.PASSWORD_RESET, token=token) is None:
        return _unusable_link_page()
    return _reset_page(token)


@bp.post(account_tokens.RESET_PATH)
def reset_password():
    csrf.protect()
    token = request.form.get("token", "")
    try:
        account_tokens.reset_password(db.session, actor=request_actor(), token=token,
                                      new_password=request.form.get("password", ""), settings=current_settings(),
                                      denylist=token_denylist())
    except ValidationFailed as err:
        return _reset_page(token, field_errors=err.details, status=422)
    except account_tokens.LinkUnusable:
        return _unusable_link_page()
    except AppError as err:
        return Response(render_template("password_reset_unusable.html", message=err.message), status=err.status)
    db.session.commit()
    return render_template("password_reset_done.html")
