"""Response headers that every answer needs and no view should have to remember.

Every answer gets a fixed set: no sniffing of its media type, no framing (RFC 6749 §10.13, for the
pages; a JSON answer gets the same, an API answer has no reason to be framed), no Referer (pages carry
codes and invitation tokens in their URLs, RFC 9700 §4.2.4), its X-Request-ID, and over https in
production Strict-Transport-Security (RFC 6797). What only an HTML page needs is built only for one:
a Content-Security-Policy with the nonce of the page's inline style, `Cache-Control: no-store`.

They are added by the app's response class as the answer is handed to the server, not by an
after_request hook: the fixed ones are constants, appended to the header list in one step, where a
hook cost every request Flask's hook dispatch and Werkzeug's validation of each constant header
(bench_app.py's framework overhead measures the difference; README's Performance section has it).
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, Response, g

from app.security.request_id import HEADER as REQUEST_ID_HEADER, request_id_of

# RFC 6797 §6.1: a year, subdomains included (TLS ends at the proxy; the browser stays on https).
HSTS = "max-age=31556926; includeSubDomains"
# No document loads anything: a JSON answer opened in a browser runs nothing and is framed nowhere.
DOCUMENT_CSP = "default-src 'none'; frame-ancestors 'none'"
PAGE_CSP = "default-src 'self'; style-src 'self'{nonce}; frame-ancestors 'none'"
EVERY_ANSWER = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                ("Referrer-Policy", "no-referrer")]
DOCUMENT_HEADERS = [*EVERY_ANSWER, ("Content-Security-Policy", DOCUMENT_CSP)]
PAGE_ONLY = (("Cache-Control", "no-store"), ("Permissions-Policy", "browsing-topics=()"))


def csp_nonce() -> str:
    """The nonce of this page's inline styles (templates call it), made on first use."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(24)
    return nonce


class AnswerResponse(Response):
    """The app's response class: every answer leaves with the headers above."""

    # Whether Strict-Transport-Security goes with answers over https (production; init_security_headers).
    send_hsts = False

    def get_wsgi_response(self, environ: dict[str, Any]) -> tuple[Any, str, list[tuple[str, str]]]:
        page = (self.headers.get("Content-Type") or "").startswith("text/html")
        if page:
            # No HTML page of ours may be stored by a browser or proxy cache: pages are per user and
            # often carry secrets in their URL or form (an invitation token in the sign-in page's
            # `next`, an ID Token in the logout confirmation's action, the authorization request in
            # consent and the organization picker). These replace whatever the view set.
            for name, value in PAGE_ONLY:
                self.headers[name] = value
            nonce = g.get("csp_nonce")
            self.headers["Content-Security-Policy"] = PAGE_CSP.format(nonce=f" 'nonce-{nonce}'" if nonce else "")
        app_iter, status, headers = super().get_wsgi_response(environ)
        headers += EVERY_ANSWER if page else DOCUMENT_HEADERS
        headers.append((REQUEST_ID_HEADER, request_id_of(environ)))
        if self.send_hsts and (environ["wsgi.url_scheme"] == "https"
                               or environ.get("HTTP_X_FORWARDED_PROTO") == "https"):
            headers.append(("Strict-Transport-Security", HSTS))
        return app_iter, status, headers


def init_security_headers(app: Flask, *, hsts: bool) -> None:
    """Answer with AnswerResponse; `hsts`: send Strict-Transport-Security over https (production:
    https, directly or as the proxy's X-Forwarded-Proto says)."""
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.response_class = type("AnswerResponse", (AnswerResponse,), {"send_hsts": hsts})
