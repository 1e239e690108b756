"""Account pages: sign up, verify the email, ask for a password-reset email and set a new password from its link.

Like every page, these are `Cache-Control: no-store` (security/headers.py) and send
`Referrer-Policy: no-referrer` (the reset page's URL carries the link's token). The forgot
page answers the same whether or not the address has an account.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from marshmallow import ValidationError

from app.errors import AppError, ValidationFailed
from app.extensions import account_mail_limits, csrf, current_settings, db, limiter, token_denylist
from app.models import AccountTokenPurpose, SessionKind
from app.request_context import request_actor
from app.schemas.users import RegisterIn
from app.security import passwords
from app.security.browser_session import current_browser_session
from app.services import account_tokens, authentication
from app.web.pages import safe_next, signed_in_response

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
                    status=account_tokens.LinkUnusable.status)


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


def _signup_page(next_url: str | None, *, email: str = "", name: str = "", field_errors: dict | None = None,
                 error: str | None = None, status: int = 200) -> Response:
    return Response(render_template("signup.html", next=next_url, email=email, name=name, error=error,
                                    field_errors=field_errors or {}, password_min_length=passwords.MIN_LENGTH),
                    status=status)


@bp.get("/signup")
def signup_form():
    if not current_settings().REGISTRATION_OPEN:
        abort(404)
    return _signup_page(safe_next(request.args.get("next")))


@bp.post("/signup")
# One per-IP budget with the API's registration, both creating accounts.
@limiter.shared_limit(lambda: current_settings().RATELIMIT_REGISTER, scope="register")
def signup():
    if not current_settings().REGISTRATION_OPEN:
        abort(404)
    csrf.protect()
    next_url = safe_next(request.form.get("next"))
    email, name = request.form.get("email", ""), request.form.get("name", "")
    settings, actor, previous = current_settings(), request_actor(), current_browser_session()
    try:
        form = RegisterIn().load({"email": email, "name": name, "password": request.form.get("password", "")})
        user = account_tokens.sign_up(db.session, actor=actor, settings=settings, **form)
        issued = authentication.sign_in(db.session, actor=actor, user=user, settings=settings, kind=SessionKind.BROWSER,
                                        previous_session_id=previous.id if previous else None)
    except (ValidationError, ValidationFailed) as err:
        details = err.messages if isinstance(err, ValidationError) else err.details
        return _signup_page(next_url, email=email, name=name, field_errors=details, status=422)
    except AppError as err:
        return _signup_page(next_url, email=email, name=name, error=err.message, status=err.status)
    db.session.commit()
    return signed_in_response(issued, next_url)


@bp.get(account_tokens.VERIFY_PATH)
def verify_email():
    try:
        user = account_tokens.verify_email(db.session, actor=request_actor(), token=request.args.get("token", ""))
    except AppError as err:  # an unusable link; for an email change, a taken address or a suspended account
        return Response(render_template("email_verify.html", error=err.message), status=err.status)
    db.session.commit()
    return render_template("email_verify.html", verified_email=user.email)


@bp.get("/email/verify/resend")
def resend_verification_form():
    return render_template("email_verify.html")


@bp.post("/email/verify/resend")
@account_mail_limits
def resend_verification():
    csrf.protect()
    account_tokens.resend_verification(db.session, actor=request_actor(), email=request.form.get("email", ""),
                                       settings=current_settings())
    db.session.commit()
    return render_template("email_verify.html", sent=True)
