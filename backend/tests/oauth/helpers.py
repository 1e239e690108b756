"""Helpers for the protocol tests: registered clients, HTML forms, PKCE, JWT checks.

The fixtures that use them are in conftest.py; tests import the types and the
pure functions from here (never from a conftest module).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.models import AuditEvent, IdentityProvider
from tests.factories import DEFAULT_PASSWORD

ISSUER = "http://127.0.0.1:5000"  # Settings.ISSUER's default, which the tests use
TOKEN_ENDPOINT = f"{ISSUER}/oauth2/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

WEB_REDIRECT_URI = "https://rp.example.com/callback"
WEB_OTHER_REDIRECT_URI = "https://rp.example.com/callback-two"
WEB_ORIGIN = "https://rp.example.com"
WEB_POST_LOGOUT_URI = "https://rp.example.com/signed-out"
SPA_REDIRECT_URI = "https://spa.example.com/callback"
SPA_ORIGIN = "https://spa.example.com"


class SessionAwareClient(FlaskClient):
    """A Flask test client that ends the test's own transaction before each request.

    The test's `db_session` must not hold a transaction while the app handles a
    request: SQLite takes its write lock at BEGIN (app/database.py), and on
    PostgreSQL the test would keep reading a stale identity map. Committing
    first also publishes the test's setup to the request's connection.
    """

    def __init__(self, *args: Any, db_session: Session | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.db_session = db_session

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        if self.db_session is not None:
            self.db_session.commit()
        return super().open(*args, **kwargs)


# --- registered clients -------------------------------------------------------

@dataclass
class Registered:
    """A client as its developer knows it: id, secret (or key) and registration."""

    client_id: str
    secret: str | None
    auth_method: str
    redirect_uris: list[str]
    scopes: list[str]
    private_jwk: Any = None  # joserfc key, for private_key_jwt clients

    @property
    def redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def assertion(self, *, audience: str = TOKEN_ENDPOINT, jti: str | None = None, key: Any = None,
                  lifetime: int = 60) -> str:
        """A private_key_jwt client assertion (RFC 7523 §3)."""
        signing_key = key or self.private_jwk
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": audience, "iat": now,
                  "exp": now + lifetime, "jti": jti or secrets.token_urlsafe(16)}
        return jwt.encode({"alg": "RS256", "kid": signing_key.kid}, claims, signing_key)

    def authenticate(self, data: dict[str, str]) -> dict[str, Any]:
        """Keyword arguments for a test-client call that authenticate as this client
        with its registered method (RFC 6749 §2.3.1, RFC 7523 §2.2)."""
        data = dict(data)
        kwargs: dict[str, Any] = {}
        if self.auth_method == "client_secret_basic":
            kwargs["auth"] = (self.client_id, self.secret)
        elif self.auth_method == "client_secret_post":
            data.update(client_id=self.client_id, client_secret=self.secret)
        elif self.auth_method == "private_key_jwt":
            data.update(client_assertion_type=ASSERTION_TYPE, client_assertion=self.assertion())
        else:
            data["client_id"] = self.client_id
        kwargs["data"] = data
        return kwargs


# --- HTML forms -------------------------------------------------------------

@dataclass
class Form:
    action: str | None
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # inputs with a name (hidden, text, …)
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value) of submit buttons
    inputs: list[dict[str, str]] = field(default_factory=list)  # attributes of every <input>


@dataclass
class Page:
    forms: list[Form]
    labels_for: list[str]
    text: str

    @property
    def form(self) -> Form:
        assert len(self.forms) == 1, f"expected one form, found {len(self.forms)}"
        return self.forms[0]


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.labels_for: list[str] = []
        self._current: Form | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = Form(action=a.get("action"), method=a.get("method", "get").lower())
            self.forms.append(self._current)
        elif tag == "label" and "for" in a:
            self.labels_for.append(a["for"])
        elif tag == "input" and self._current is not None:
            self._current.inputs.append(a)
            if a.get("name") and a.get("type") not in {"submit", "button"}:
                self._current.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and self._current is not None and a.get("name"):
            self._current.buttons.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None

    def handle_data(self, data: str) -> None:
        self._text.append(data)


def parse_page(response: TestResponse) -> Page:
    assert response.mimetype == "text/html", response.mimetype
    parser = _PageParser()
    parser.feed(response.get_data(as_text=True))
    return Page(forms=parser.forms, labels_for=parser.labels_for, text=" ".join(" ".join(parser._text).split()))


# --- PKCE -------------------------------------------------------------------

@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


def make_pkce() -> Pkce:
    """A code_verifier and its S256 code_challenge (RFC 7636 §4.1, §4.2)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return Pkce(verifier, challenge)


# --- redirects -------------------------------------------------------------

def query_of(location: str) -> dict[str, str]:
    """The query parameters of a redirect, each given exactly once."""
    values = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in values.values()), f"repeated parameters in {location}"
    return {k: v[0] for k, v in values.items()}


def without_query(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path


@dataclass
class Redirect:
    """The authorization server's answer to the client (RFC 6749 §4.1.2)."""

    response: TestResponse
    location: str
    params: dict[str, str]
    # What the request sent, for the code exchange that follows.
    client: Registered | None = None
    redirect_uri: str | None = None
    pkce: Pkce | None = None
    nonce: str | None = None

    @property
    def code(self) -> str:
        assert "code" in self.params, f"no code in {self.location}"
        return self.params["code"]

    @property
    def target(self) -> str:
        return without_query(self.location)


# --- the browser ----------------------------------------------------------------

class Browser:
    """A user agent: it signs in through the HTML form and follows the authorization flow."""

    def __init__(self, http: SessionAwareClient) -> None:
        self.http = http

    def login_page(self, **query: str) -> TestResponse:
        return self.http.get("/login", query_string=query)

    def submit_login(self, page: TestResponse, email: str, password: str = DEFAULT_PASSWORD) -> TestResponse:
        """Fill in and post the sign-in form of `page` (hidden csrf_token and next included)."""
        form = parse_page(page).form
        return self.http.post(form.action, data={**form.fields, "email": email, "password": password})

    def sign_in(self, user, password: str = DEFAULT_PASSWORD) -> TestResponse:
        response = self.submit_login(self.login_page(), user.email, password)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response

    def follow_login(self, redirect_to_login: TestResponse, user, password: str = DEFAULT_PASSWORD) -> TestResponse:
        """Given a redirect to /login, open the page and sign in; returns the sign-in response."""
        assert redirect_to_login.status_code == 302, redirect_to_login.status_code
        assert redirect_to_login.location.startswith("/login?"), redirect_to_login.location
        page = self.http.get(redirect_to_login.location)
        assert page.status_code == 200
        return self.submit_login(page, user.email, password)

    def authorize(self, params: dict[str, str] | None = None, **more: str) -> TestResponse:
        return self.http.get("/oauth2/authorize", query_string={**(params or {}), **more})

    def decide(self, consent_page: TestResponse, decision: str, *, csrf_token: str | None = None) -> TestResponse:
        """Press Allow or Deny on a consent page."""
        page = parse_page(consent_page)
        form = page.form
        assert (("decision", decision) in form.buttons), form.buttons
        data = {**form.fields, "decision": decision}
        if csrf_token is not None:
            data["csrf_token"] = csrf_token
        return self.http.post(form.action, data=data)

    def follow(self, response: TestResponse) -> TestResponse:
        """Follow a redirect that stays on this server."""
        assert response.status_code == 302 and response.location.startswith("/"), response.location
        return self.http.get(response.location)


def is_consent_page(response: TestResponse) -> bool:
    if response.status_code != 200 or response.mimetype != "text/html":
        return False
    page: Page = parse_page(response)
    return any(("decision", "allow") in form.buttons for form in page.forms)


DEFAULT: Any = object()


def authorization_params(client: Registered, *, pkce: Pkce | None = None, scope: str | None = "openid profile email",
                         state: str | None = "state-xyz", nonce: str | None = None, redirect_uri: Any = DEFAULT,
                         **extra: str | None) -> dict[str, str]:
    """An authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1).

    The redirect URI defaults to the client's first; None leaves a parameter out.
    """
    params = {"response_type": "code", "client_id": client.client_id,
              "redirect_uri": client.redirect_uri if redirect_uri is DEFAULT else redirect_uri,
              "scope": scope, "state": state,
              "nonce": nonce or secrets.token_urlsafe(12)}
    if pkce is not None:
        params.update(code_challenge=pkce.challenge, code_challenge_method="S256")
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


# --- JWTs ---------------------------------------------------------------------

def jwks(http: FlaskClient) -> KeySet:
    response = http.get("/oauth2/jwks")
    assert response.status_code == 200
    return KeySet.import_key_set(response.get_json())


def verify_jwt(http: FlaskClient, token: str) -> jwt.Token:
    """Decode `token`, checking its signature against the published JWKS."""
    return jwt.decode(token, jwks(http), algorithms=["RS256", "ES256"])


def half_hash(value: str) -> str:
    """OIDC Core §3.1.3.6: base64url of the left half of SHA-256 (for RS256 and ES256)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def unverified_header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


# --- the database -------------------------------------------------------------

def store_under_a_dropped_key(db: Session, provider: IdentityProvider, column: str) -> None:
    """`provider`'s stored secret in `column` as if the ENCRYPTION_KEYS key it was encrypted under had been
    dropped without `flask secrets rotate`: no key decrypts it."""
    db.execute(update(IdentityProvider).where(IdentityProvider.id == provider.id)
               .values({column: "gAAAAA-stored-under-a-dropped-key"}))
    db.commit()


def audit_events(db: Session, action: str) -> list[AuditEvent]:
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.occurred_at)))
