"""HTML pages: sign-in. Server-rendered, no JavaScript, CSRF-protected forms.

Sign-in is identifier-first: the page asks for the email; when its domain is verified and routed with
auto_redirect (home-realm discovery), the browser goes on to that connection, otherwise the page asks for
the password. The answer depends on the email's domain only, never on whether an account has it. A form
posting the email and the password together signs in at once (no step skipped for anyone but the person
who already knows they have a password).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, render_template, request, session, url_for

from app.errors import AppError
from app.extensions import csrf, current_settings, db, limiter
from app.models import SessionKind
from app.request_context import request_actor
from app.services import authentication, domains, identities
from app.services.sessions import IssuedSession
from app.services.invitations import ACCEPT_PATH as INVITATION_PATH
from app.security.browser_session import FRESH_LOGIN_KEY, current_browser_session, set_session_cookie

bp = Blueprint("web", __name__, template_folder="templates")


def _is_local(target: str, path: str) -> bool:
    """Whether `target` is a path on this server (no scheme, no host) that is exactly `path`."""
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc and parts.path == path


def safe_next(target: str | None) -> str | None:
    """Only our own authorization endpoint and invitation page are valid places to return to (no open redirect)."""
    if target and (_is_local(target, url_for("oauth.authorize")) or _is_local(target, INVITATION_PATH)):
        return target
    return None


@bp.get("/login")
def login_form():
    next_url = safe_next(request.args.get("next"))
    # OIDC Core §3.1.2.1 login_hint (passed on by /oauth2/authorize): the email, identified already.
    hint = request.args.get("login_hint", "").strip()
    return _identified(next_url, hint) if hint else login_page(next_url)


def _identified(next_url: str | None, email: str) -> Response:
    """Home-realm discovery: on to the connection the email's domain routes to, or the password step."""
    connection = domains.routed_connection(db.session, email)
    if connection is not None:
        # 303: after the email step's POST, the browser GETs the connection's start (RFC 9110 §15.4.4).
        return redirect(url_for("federation.start", provider_id=connection.id, next=next_url), code=303)
    return login_page(next_url, email=email)


def _identifying() -> bool:
    """The first step's form: the email alone, no password."""
    return "password" not in request.form


@bp.post("/login")
# Only password checks spend the budget: the first step reads the email's domain, nothing about accounts.
@limiter.shared_limit(lambda: current_settings().RATELIMIT_LOGIN, scope="login", exempt_when=_identifying)
def login():
    csrf.protect()
    next_url = safe_next(request.form.get("next"))
    email = request.form.get("email", "")
    if _identifying():
        if not email.strip():
            return login_page(next_url, error="Enter your email address.", status=422)
        return _identified(next_url, email.strip())
    previous = current_browser_session()
    try:
        issued = authentication.login(db.session, actor=request_actor(), email=email,
                                      password=request.form.get("password", ""), settings=current_settings(),
                                      kind=SessionKind.BROWSER, previous_session_id=previous.id if previous else None)
    except AppError as err:
        db.session.commit()  # the failure counts and audit event are kept
        # A lock's or throttle's Retry-After, as the API sends it (not the API's Bearer challenge: this is a page).
        retry_after = {"Retry-After": err.headers["Retry-After"]} if "Retry-After" in err.headers else None
        return login_page(next_url, email=email, error=err.message, status=err.status, headers=retry_after)
    db.session.commit()
    return signed_in_response(issued, next_url)


def signed_in_response(issued: IssuedSession, next_url: str | None) -> Response:
    """Back to where the sign-in was for (the pending authorization request resumes), with the session cookie."""
    # Only authorization requests read it; an invitation link (it carries a token) stays out of the cookie.
    if next_url and _is_local(next_url, url_for("oauth.authorize")):
        session[FRESH_LOGIN_KEY] = {"session": str(issued.session.id), "request": next_url}
    else:
        session.pop(FRESH_LOGIN_KEY, None)
    response = redirect(next_url) if next_url else Response(
        render_template("signed_in.html", user=issued.session.user))
    set_session_cookie(response, issued.token, issued.session)
    return response


def login_page(next_url: str | None, *, email: str = "", error: str | None = None, status: int = 200,
               headers: dict[str, str] | None = None) -> Response:
    """The sign-in page, with a button per enabled platform identity provider: its first step (the email)
    without `email`, its password step with it."""
    return Response(render_template("login.html", next=next_url, email=email, error=error,
                                    providers=identities.enabled_platform_providers(db.session),
                                    registration_open=current_settings().REGISTRATION_OPEN),
                    status=status, headers=headers)
