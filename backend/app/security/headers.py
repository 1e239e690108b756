"""Response headers that every answer needs and no view should have to remember.

Every answer gets a fixed set, added in one step: no sniffing of its media type, no framing (RFC 6749
§10.13, for the pages; a JSON answer gets the same, an API answer has no reason to be framed), no
Referer (pages carry codes and invitation tokens in their URLs, RFC 9700 §4.2.4), and over https in
production Strict-Transport-Security (RFC 6797). What only an HTML page needs is built only for
one: a Content-Security-Policy with the nonce of the page's inline style, `Cache-Control: no-store`.
"""

from __future__ import annotations

import secrets

from flask import Flask, Response, g, request

# RFC 6797 §6.1: a year, subdomains included (TLS ends at the proxy; the browser stays on https).
HSTS = "max-age=31556926; includeSubDomains"
# No document loads anything: a JSON answer opened in a browser runs nothing and is framed nowhere.
DOCUMENT_CSP = "default-src 'none'; frame-ancestors 'none'"
PAGE_CSP = "default-src 'self'; style-src 'self'{nonce}; frame-ancestors 'none'"
EVERY_ANSWER = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                ("Referrer-Policy", "no-referrer"))
DOCUMENT_HEADERS = (*EVERY_ANSWER, ("Content-Security-Policy", DOCUMENT_CSP))
PAGE_ONLY = (("Cache-Control", "no-store"), ("Permissions-Policy", "browsing-topics=()"))


def csp_nonce() -> str:
    """The nonce of this page's inline styles (templates call it), made on first use."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(24)
    return nonce


def init_security_headers(app: Flask, *, hsts: bool) -> None:
    """Add the headers above to every response; `hsts`: send Strict-Transport-Security over https
    (production: https, directly or as the proxy's X-Forwarded-Proto says)."""
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        headers = response.headers
        # The header as sent, not response.mimetype, which parses it on every read.
        if not (response.content_type or "").startswith("text/html"):
            headers.extend(DOCUMENT_HEADERS)
        else:
            headers.extend(EVERY_ANSWER)
            # No HTML page of ours may be stored by a browser or proxy cache: pages are per user and
            # often carry secrets in their URL or form (an invitation token in the sign-in page's
            # `next`, an ID Token in the logout confirmation's action, the authorization request in
            # consent and the organization picker).
            for name, value in PAGE_ONLY:
                headers[name] = value
            nonce = g.get("csp_nonce")
            headers["Content-Security-Policy"] = PAGE_CSP.format(nonce=f" 'nonce-{nonce}'" if nonce else "")
        environ = request.environ
        if hsts and (environ["wsgi.url_scheme"] == "https" or environ.get("HTTP_X_FORWARDED_PROTO") == "https"):
            headers["Strict-Transport-Security"] = HSTS
        return response
