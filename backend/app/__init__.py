"""Gatehouse: create_app() builds the Flask application from Settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from pathlib import Path

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import BACKEND_DIR, DEV_SECRET_KEY, Settings
from app.database import configure_engine, engine_options
from app.extensions import csrf, db, limiter, migrate
from app.federation.dns import TxtResolver
from app.federation.http import GuardedFetcher
from app.federation.metadata import UpstreamMetadata
from app.logging_setup import configure_logging
from app.security.crypto import FieldCipher
from app.security.cookie_session import CookieSessionInterface
from app.security.headers import init_security_headers
from app.security.request_input import init_request_input
from app.services import client_origins, clients, mail, revocations
from app.services.keys import KeyringError, KeyStore, ensure_keys
from app.stores import build_stores
from app.stores.client_cache import take_changed_clients, track_client_changes

log = logging.getLogger(__name__)


class GatehouseApp(Flask):
    """Flask, less one cost of every request: Flask asks of every view and hook, on every call,
    whether it is a coroutine function (`ensure_sync`, its documented hook for running async code).
    For the views, hooks and error handlers the app registered (`remember_sync_callables`, once they
    all are) the answer is looked up; anything else (a callback made per request) is asked as Flask asks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_callables: dict[Callable, Callable] = {}

    def remember_sync_callables(self) -> None:
        registered = [*self.view_functions.values(),
                      *(func for registry in (self.before_request_funcs, self.after_request_funcs,
                                              self.teardown_request_funcs, self.url_value_preprocessors,
                                              self.url_default_functions) for funcs in registry.values()
                        for func in funcs),
                      *self.teardown_appcontext_funcs,
                      *(handler for by_code in self.error_handler_spec.values() for by_class in by_code.values()
                        for handler in by_class.values())]
        self._sync_callables = {func: super(GatehouseApp, self).ensure_sync(func) for func in registered}

    def ensure_sync(self, func: Callable) -> Callable:
        try:
            return self._sync_callables[func]
        except (KeyError, TypeError):  # not registered (or not hashable): asked every time
            return super().ensure_sync(func)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    settings.check()
    configure_logging(settings)
    if settings.SECRET_KEY == DEV_SECRET_KEY:
        log.warning("SECRET_KEY is the development default; set SECRET_KEY before exposing this server")

    app = GatehouseApp(__name__, instance_path=str(BACKEND_DIR / "instance"))
    app.config.update(
        SECRET_KEY=settings.SECRET_KEY,
        SQLALCHEMY_DATABASE_URI=settings.DATABASE_URL,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.DATABASE_URL),
        MAX_CONTENT_LENGTH=settings.MAX_CONTENT_LENGTH,
        RATELIMIT_STORAGE_URI=settings.REDIS_URL or "memory://",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_CHECK_DEFAULT=False,
        # Flask-WTF's HTTPS check demands a same-origin Referer, which our pages never send
        # (Referrer-Policy: no-referrer, security/headers.py): every form POST over https would be a 400.
        # The CSRF token, bound to the SameSite=Lax session cookie, is the protection.
        WTF_CSRF_SSL_STRICT=False,
        # OPTIONS is answered only where CORS applies (oauth/cors.py declares it on its routes); elsewhere
        # it is a 405 with Allow (in the envelope under /api), not Flask's empty text/html 200.
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    app.json.sort_keys = False
    app.session_interface = CookieSessionInterface()
    app.extensions["gatehouse.settings"] = settings
    _init_keys(app, settings)
    _init_field_cipher(app, settings)
    _init_federation(app, settings)
    if settings.DATABASE_URL.startswith("sqlite:///"):
        Path(settings.DATABASE_URL.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    migrate.init_app(app, db, directory=str(BACKEND_DIR / "migrations"), render_as_batch=True)
    _init_without_request_hooks(app, limiter.init_app)
    _init_without_request_hooks(app, csrf.init_app)
    _init_stores(app, settings)
    _init_mail(app, settings)
    init_security_headers(app, hsts=settings.is_production)
    init_request_input(app)
    _register_blueprints(app)
    _refuse_limits_without_their_hook(app)
    _register_cli(app)
    _wrap_wsgi(app, settings)
    app.remember_sync_callables()
    return app


def _wrap_wsgi(app: Flask, settings: Settings) -> None:
    """ProxyFix, so that the app sees the client's address and scheme as the trusted proxies report them."""
    if settings.TRUSTED_PROXY_COUNT:
        n = settings.TRUSTED_PROXY_COUNT
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)


def _init_without_request_hooks(app: Flask, init: Callable[[Flask], None]) -> None:
    """`init(app)`, less the hooks it adds to every request of the app.

    Flask-Limiter's hooks look for default, application-wide and blueprint limits on every request,
    inject rate-limit headers (disabled) and deduct conditional costs; Gatehouse declares none of
    those: a limited route checks its own limits in its decorator, per request. Flask-WTF's hook
    checks a CSRF token on every request only under WTF_CSRF_CHECK_DEFAULT, which is off: the form
    handlers call csrf.protect(). So these hooks only cost every request that has no use for them."""
    hooks = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    before = [dict((key, list(funcs)) for key, funcs in registry.items()) for registry in hooks]
    init(app)
    for registry, kept in zip(hooks, before):
        registry.clear()
        registry.update(kept)


def _refuse_limits_without_their_hook(app: Flask) -> None:
    """Default, application-wide and blueprint limits are applied only by the Flask-Limiter hook that
    _init_without_request_hooks removes, and a route limit's `deduct_when` is deducted only by it too:
    declared, they would silently limit nothing. Refuse to start instead; a limit belongs on its route
    (a decorator checks it per request), deducted on every request."""
    manager = limiter.limit_manager
    # Every declared limit as declared, wherever it is (a view, a function a view calls), without evaluating
    # its value, which may read the request. Flask-Limiter lists them publicly only per function name.
    deducted_after = [f"{name}: {limit.limit_provider} with deduct_when"
                      for name, limits in manager._decorated_limits.items() for limit in limits if limit.deduct_when]
    unapplied = [*(f"default {limit.limit}" for limit in manager.default_limits),
                 *(f"application {limit.limit}" for limit in manager.application_limits),
                 *(f"blueprint {name}: {limit.limit}" for name in app.blueprints
                   for limit in manager.blueprint_limits(app, name)), *deducted_after]
    if unapplied:
        raise RuntimeError("rate limits that no hook applies (declare them on routes, without deduct_when): "
                           + ", ".join(unapplied))


def _init_keys(app: Flask, settings: Settings) -> None:
    """Keep the signing keyring on the app: generated outside production, only checked in it."""
    store = KeyStore(settings.SIGNING_KEYS_DIR, max_token_lifetime=settings.key_retention,
                     rescan_interval=settings.signing_keys_rescan_seconds)
    app.extensions["gatehouse.keys"] = store
    try:
        if not settings.is_production:
            ensure_keys(settings.SIGNING_KEYS_DIR)  # reads the directory; writes only what is missing
        store.signing_key("RS256")  # ID tokens and access tokens need one
    except KeyringError as err:
        # Start anyway, so that `flask keys ...` can repair it; token endpoints fail until then.
        log.error("signing keys: %s", err)


def _init_field_cipher(app: Flask, settings: Settings) -> None:
    """The cipher of stored secrets that must be read back (upstream client secrets): ENCRYPTION_KEYS,
    required in production (Settings.check); elsewhere a key derived from SECRET_KEY when unset."""
    if settings.encryption_keys:
        app.extensions["gatehouse.field_cipher"] = FieldCipher.from_keys(settings.encryption_keys)
        return
    log.warning("ENCRYPTION_KEYS is not set: stored upstream secrets are encrypted with a key derived from "
                "SECRET_KEY (development only; production requires ENCRYPTION_KEYS)")
    app.extensions["gatehouse.field_cipher"] = FieldCipher.derived_from(settings.SECRET_KEY)


def _init_federation(app: Flask, settings: Settings) -> None:
    """The fetcher of administrator-supplied upstream URLs, with its SSRF guard (federation/http.py), and
    the cache of upstream discovery documents and key sets (federation/metadata.py), and the resolver of
    domain-verification records (federation/dns.py)."""
    fetcher = app.extensions["gatehouse.upstream_fetcher"] = GuardedFetcher(
        allow_private_networks=settings.federation_allow_private_networks, require_https=settings.is_production)
    app.extensions["gatehouse.upstream_metadata"] = UpstreamMetadata(fetcher)
    app.extensions["gatehouse.dns"] = TxtResolver(settings.DNS_RESOLVER, timeout=settings.DNS_TIMEOUT_SECONDS)


def _init_stores(app: Flask, settings: Settings) -> None:
    """The process-wide stores (app/stores), on the app. The client cache is told about every
    committed client change (stores.client_cache.track_client_changes notes them), the denylist
    about every committed denial; the database's record of denials (services.revocations), read
    through the session at hand, restores it."""
    app.extensions["gatehouse.stores"] = build_stores(
        settings, denial_record=revocations.DatabaseDenials(lambda: db.session),
        load_client=clients.get_client, load_origins=client_origins.all_cors_origins,
        current_session=lambda: db.session)
    track_client_changes()
    # Every session's, not only db.session's: a change is published by whichever session commits it.
    if not event.contains(Session, "after_commit", _publish_client_changes):
        event.listen(Session, "after_commit", _publish_client_changes)
    if not event.contains(Session, "after_commit", revocations.publish_denials):
        event.listen(Session, "after_commit", revocations.publish_denials)
        event.listen(Session, "after_rollback", revocations.drop_denials)


def _publish_client_changes(session: Session) -> None:
    changed = take_changed_clients(session)
    if changed is not None and has_app_context():
        stores = current_app.extensions.get("gatehouse.stores")
        if stores is not None:
            stores.client_cache.invalidate(changed)


def _init_mail(app: Flask, settings: Settings) -> None:
    """The mailer, and the hooks that send mail queued in a transaction once it commits (services/mail.py)."""
    app.extensions["gatehouse.mailer"] = mail.mailer_from_settings(settings)
    # One listener for every app: db.session is shared by all apps built in this process.
    if not event.contains(db.session, "after_commit", _send_queued_mail):
        event.listen(db.session, "after_commit", _send_queued_mail)
        event.listen(db.session, "after_rollback", _drop_queued_mail)


def _send_queued_mail(session: Session) -> None:
    if has_app_context():
        mail.send_queued(session, current_app.extensions["gatehouse.mailer"])
    else:
        mail.drop_queued(session)


def _drop_queued_mail(session: Session) -> None:
    mail.drop_queued(session)


def _register_blueprints(app: Flask) -> None:
    from app.api import auth, clients, envelope, health, organization_audit, organization_clients, users
    from app.api import identity_providers, invitations, organization_connections, organizations
    from app.api import admin, domains, login_history, organization_domains
    from app.oauth import endpoints
    from app.oauth.server import init_oauth
    from app.web import accounts as account_pages
    from app.web import federation as federation_pages
    from app.web import invitations as invitation_pages
    from app.web import pages
    from app.web import saml as saml_pages

    envelope.register_error_handlers(app)
    # A 405 is raised while routing, before a blueprint is known, so only app-wide handlers see it: the
    # protocol endpoints answer theirs in their own format, every other path as the envelope does.
    app.register_error_handler(
        MethodNotAllowed, lambda error: endpoints.refused_method(error) or envelope.from_http_exception(error))
    init_oauth(app)
    for module in (auth, users, clients, organizations, organization_clients, organization_audit, health,
                   invitations, identity_providers, organization_connections, organization_domains, domains,
                   endpoints, pages, invitation_pages, federation_pages, saml_pages, account_pages, admin,
                   login_history):
        app.register_blueprint(module.bp)


def _register_cli(app: Flask) -> None:
    from app.cli import clients, keys, providers, secrets, seed, sessions, users

    app.cli.add_command(users.cli)
    app.cli.add_command(sessions.cli)
    app.cli.add_command(clients.cli)
    app.cli.add_command(keys.cli)
    app.cli.add_command(seed.cli)
    app.cli.add_command(providers.cli)
    app.cli.add_command(secrets.cli)
