"""`flask seed`: demo data for a development server (refused in production).

Idempotent: the demo user, the demo organization and the clients are found by
email, slug and name and created only once. Client secrets are stored hashed, so
each run rotates the demo secrets and prints the new ones, which therefore always work.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import urlencode

import click
from flask.cli import AppGroup, with_appcontext

from app.extensions import current_settings, db
from app.services import clients, organizations, users
from app.services.actor import Actor

cli = AppGroup("seed", help="Development demo data.", invoke_without_command=True)

DEMO_EMAIL = "demo@gatehouse.test"
DEMO_PASSWORD = "demo-password-change-me"
DEMO_REDIRECT = "http://127.0.0.1:8765/callback"
OIDC_SCOPES = ["openid", "profile", "email", "offline_access", "organization"]
DEMO_ORGANIZATION_SLUG = "acme"
DEMO_ORGANIZATION_NAME = "Acme Inc."


def _find_or_create_client(name: str, **spec) -> clients.IssuedClient:
    client = clients.find_platform_client_by_name(db.session, name)
    actor = Actor(user=None)
    if client is None:
        return clients.create_client(db.session, actor=actor, name=name, **spec)
    if client.scopes != spec["scopes"]:  # seeded by an earlier version: follow today's demo
        clients.update_client(db.session, actor=actor, client=client, scopes=spec["scopes"])
    if client.client_secret_hash is None:
        return clients.IssuedClient(client=client, client_secret=None)
    return clients.rotate_client_secret(db.session, actor=actor, client=client)


@cli.result_callback()
@with_appcontext  # the `flask` command pushes one; a bare AppGroup (the test runner's) does not for this callback
def seed(*_: object) -> None:
    """Create (once) a demo user, an organization it owns, a web app, SPA and machine client, and print
    how to use them."""
    settings = current_settings()
    if settings.is_production:
        raise click.ClickException("flask seed creates well-known demo credentials; it is refused in production.")
    user = users.get_user_by_email(db.session, DEMO_EMAIL)
    if user is None:
        user = users.create_user(db.session, email=DEMO_EMAIL, password=DEMO_PASSWORD, name="Demo User",
                                 bcrypt_rounds=settings.BCRYPT_ROUNDS)
    organization = organizations.find_organization(db.session, DEMO_ORGANIZATION_SLUG)
    if organization is None:
        organization = organizations.create_organization(db.session, actor=Actor(user=user),
                                                         name=DEMO_ORGANIZATION_NAME, slug=DEMO_ORGANIZATION_SLUG)
    web = _find_or_create_client(
        "Demo web app", client_type="confidential", redirect_uris=[DEMO_REDIRECT],
        post_logout_redirect_uris=["http://127.0.0.1:8765/"], grant_types=["authorization_code", "refresh_token"],
        scopes=OIDC_SCOPES)
    spa = _find_or_create_client(
        "Demo single-page app", client_type="public", redirect_uris=["http://127.0.0.1:8766/callback"],
        grant_types=["authorization_code", "refresh_token"], scopes=OIDC_SCOPES)
    machine = _find_or_create_client(
        "Demo machine client", client_type="confidential", redirect_uris=[], grant_types=["client_credentials"],
        scopes=["api:read", "api:write"])
    db.session.commit()

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    issuer = settings.ISSUER.rstrip("/")
    authorize_url = f"{issuer}/oauth2/authorize?" + urlencode({
        "response_type": "code", "client_id": web.client.client_id, "redirect_uri": DEMO_REDIRECT,
        "scope": " ".join(OIDC_SCOPES), "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge, "code_challenge_method": "S256", "organization": organization.slug})
    click.echo(f"""
Gatehouse demo data (development only)
  user           {DEMO_EMAIL} / {DEMO_PASSWORD}
  organization   {organization.slug} ({organization.name}) id={organization.id}, the demo user is its owner
  web app        client_id={web.client.client_id} client_secret={web.client_secret}
  SPA (public)   client_id={spa.client.client_id}
  machine        client_id={machine.client.client_id} client_secret={machine.client_secret}

Sign in through the browser: open
  {authorize_url}
sign in as the demo user and allow access; the tokens are issued in the organization {organization.slug}.
The browser then lands on {DEMO_REDIRECT}?code=… (nothing listens there: copy the code
from the address bar) and exchange it within 60 seconds:
  curl -s -u '{web.client.client_id}:{web.client_secret}' {issuer}/oauth2/token \\
       -d grant_type=authorization_code -d redirect_uri={DEMO_REDIRECT} \\
       -d code_verifier={verifier} -d code=PASTE_CODE

Machine token:
  curl -s -u '{machine.client.client_id}:{machine.client_secret}' {issuer}/oauth2/token -d grant_type=client_credentials
""")
