"""/api/v1/auth: registration, sign-in and the caller's sessions."""

from __future__ import annotations

import uuid

from flask import Blueprint

from app.api.context import (current_actor, current_session, current_token, current_user, load_body,
                             require_session)
from app.api.envelope import created, no_store, ok
from app.api.openapi import documented
from app.errors import AppError
from app.extensions import account_mail_limits, current_settings, db, limiter, token_denylist
from app.schemas.sessions import IssuedSessionOut, LoginIn, MeOut, SessionOut, SessionsEndedOut
from app.schemas.users import AccountEmailIn, EmailVerifyIn, PasswordResetIn, RegisterIn, UserOut
from app.services import account_tokens, authentication, sessions

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")


@bp.post("/register")
@documented(summary="Create an account", tag="auth", body=RegisterIn, response=UserOut, status=201,
            errors=(403, 409, 429),
            description="Emails the address a verification link (EMAIL_VERIFICATION_TTL_SECONDS, 48 hours). "
                        "403 when REGISTRATION_OPEN is false (invitation-only deployments), or when the address's "
                        "verified domain enforces single sign-on (enforce_sso).")
@limiter.limit(lambda: current_settings().RATELIMIT_REGISTER)
def register():
    data = load_body(RegisterIn())
    user = account_tokens.sign_up(db.session, actor=current_actor(), settings=current_settings(), **data)
    db.session.commit()
    return created(UserOut().dump(user), message="Account created.")


@bp.post("/password/forgot")
@documented(summary="Email a password-reset link", tag="auth", body=AccountEmailIn, status=202, errors=(429,),
            description="Answers 202 whether or not an account has the address. The link works once, for "
                        "PASSWORD_RESET_TTL_SECONDS (30 minutes), and a newer one or a password change kills it. "
                        "Rate-limited per client IP and per address (RATELIMIT_ACCOUNT_MAIL, "
                        "RATELIMIT_ACCOUNT_MAIL_PER_ADDRESS), shared with the /password/forgot page.")
@account_mail_limits
def forgot_password():
    data = load_body(AccountEmailIn())
    account_tokens.request_password_reset(db.session, actor=current_actor(), email=data["email"],
                                          settings=current_settings())
    db.session.commit()
    return ok(status=202, message="If an account has this address, a reset link was emailed to it.")


@bp.post("/password/reset")
@documented(summary="Set a new password with the token of a reset link", tag="auth", body=PasswordResetIn,
            errors=(403, 404),
            description="Ends every session of the user and revokes every refresh-token family (with their "
                        "live access tokens); signs nothing in. 404 for a token that is unknown, expired, used "
                        "or superseded.")
def reset_password():
    data = load_body(PasswordResetIn())
    account_tokens.reset_password(db.session, actor=current_actor(), token=data["token"],
                                  new_password=data["password"], settings=current_settings(),
                                  denylist=token_denylist())
    db.session.commit()
    return ok(message="Password changed; sign in with it.")


@bp.post("/email/verify")
@documented(summary="Verify the account's email, or confirm a new one, with the token of an emailed link",
            tag="auth", body=EmailVerifyIn, response=UserOut, errors=(403, 404, 409),
            description="404 for a token that is unknown, expired (48 hours), used or superseded. A link from "
                        "POST /api/v1/users/me/email makes its address the account's: 409 when another account "
                        "took it meanwhile, 403 when the account is suspended.")
def verify_email():
    data = load_body(EmailVerifyIn())
    user = account_tokens.verify_email(db.session, actor=current_actor(), token=data["token"])
    db.session.commit()
    return ok(UserOut().dump(user), message="Email verified.")


@bp.post("/email/resend")
@documented(summary="Email a new verification link", tag="auth", body=AccountEmailIn, status=202, errors=(429,),
            description="Answers 202 whether or not an account with an unverified address has it; rate-limited "
                        "as /password/forgot, sharing its budgets.")
@account_mail_limits
def resend_verification():
    data = load_body(AccountEmailIn())
    account_tokens.resend_verification(db.session, actor=current_actor(), email=data["email"],
                                       settings=current_settings())
    db.session.commit()
    return ok(status=202, message="If an account with an unverified address has it, a link was emailed to it.")


@bp.post("/login")
@documented(summary="Sign in with email and password; returns a session token", tag="auth", body=LoginIn,
            response=IssuedSessionOut, errors=(401, 403, 423, 429),
            description="403 when the account is suspended, or when the address's verified domain enforces single "
                        "sign-on (enforce_sso; the message names SSO, whatever the password), except for platform "
                        "administrators.")
# One budget per client IP shared with the HTML sign-in form (web/pages.py).
@limiter.shared_limit(lambda: current_settings().RATELIMIT_LOGIN, scope="login")
def login():
    data = load_body(LoginIn())
    try:
        issued = authentication.login(db.session, actor=current_actor(), settings=current_settings(), **data)
    except AppError:
        db.session.commit()  # the failure counts and audit event are kept, then reported
        raise
    db.session.commit()
    return no_store(ok(IssuedSessionOut().dump(issued), message="Signed in."))


@bp.post("/logout")
@documented(summary="End the current session", tag="auth")
@require_session
def logout():
    sessions.logout(db.session, actor=current_actor(), session=current_session())
    db.session.commit()
    return ok(message="Signed out.")


@bp.post("/logout-all")
@documented(summary="End every session of the current user, this one included", tag="auth",
            response=SessionsEndedOut)
@require_session
def logout_all():
    ended = sessions.logout_everywhere(db.session, actor=current_actor(), user=current_user())
    db.session.commit()
    return ok({"sessions_ended": ended}, message="Signed out everywhere.")


@bp.get("/me")
@documented(summary="The current user and session", tag="auth", response=MeOut)
@require_session
def me():
    session = current_session()
    return ok({"user": UserOut().dump(current_user()),
               "session": SessionOut(current_session_id=session.id).dump(session)})


@bp.get("/sessions")
@documented(summary="The current user's live sessions; `current` marks this one", tag="auth",
            response=SessionOut, many=True)
@require_session
def list_sessions():
    live = sessions.list_live_sessions(db.session, user_id=current_user().id)
    return ok(SessionOut(many=True, current_session_id=current_session().id).dump(live))


@bp.post("/sessions/refresh")
@documented(summary="Rotate the current session token and extend its idle window", tag="auth",
            response=IssuedSessionOut,
            description="The old token stops working at once. The absolute expiry never moves.")
@require_session
def refresh_session():
    issued = sessions.refresh_session(db.session, actor=current_actor(), session=current_session(),
                                      presented_token=current_token(), settings=current_settings())
    db.session.commit()
    return no_store(ok(IssuedSessionOut().dump(issued), message="Session refreshed."))


@bp.delete("/sessions/<uuid:session_id>")
@documented(summary="End one of the current user's sessions", tag="auth", response=SessionOut, errors=(404,))
@require_session
def revoke_session(session_id: uuid.UUID):
    session = sessions.revoke_session(db.session, actor=current_actor(), user=current_user(),
                                      session_id=session_id)
    db.session.commit()
    return ok(SessionOut(current_session_id=current_session().id).dump(session), message="Session ended.")
