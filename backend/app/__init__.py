"""Gatehouse: create_app() builds the Flask application from Settings."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from flask_talisman import Talisman
from redis import Redis
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import BACKEND_DIR, DEV_SECRET_KEY, Settings
from app.database import configure_engine, engine_options
from app.extensions import db, limiter, migrate
from app.logging_setup import configure_logging
from app.security.request_id import init_request_id

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    settings.check()
    configure_logging(settings)
    if settings.SECRET_KEY == DEV_SECRET_KEY:
        log.warning("SECRET_KEY is the development default; set SECRET_KEY before exposing this server")

    app = Flask(__name__, instance_path=str(BACKEND_DIR / "instance"))
    app.config.update(
        SECRET_KEY=settings.SECRET_KEY,
        SQLALCHEMY_DATABASE_URI=settings.DATABASE_URL,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.DATABASE_URL),
        MAX_CONTENT_LENGTH=settings.MAX_CONTENT_LENGTH,
        RATELIMIT_STORAGE_URI=settings.REDIS_URL or "memory://",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.json.sort_keys = False
    app.extensions["gatehouse.settings"] = settings
    if settings.DATABASE_URL.startswith("sqlite:///"):
        Path(settings.DATABASE_URL.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if settings.TRUSTED_PROXY_COUNT:
        n = settings.TRUSTED_PROXY_COUNT
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)

    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    migrate.init_app(app, db, directory=str(BACKEND_DIR / "migrations"), render_as_batch=True)
    limiter.init_app(app)
    if settings.REDIS_URL:
        app.extensions["gatehouse.redis"] = Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    Talisman(
        app,
        force_https=False,  # TLS ends at the proxy; HSTS below tells browsers to stay on https
        strict_transport_security=settings.is_production,
        session_cookie_secure=settings.is_production,
        frame_options="DENY",
        # Talisman only appends the nonce to directives listed here: without an
        # explicit style-src, default-src 'self' blocks the nonce'd inline styles.
        content_security_policy={"default-src": "'self'", "style-src": "'self'", "frame-ancestors": "'none'"},
        content_security_policy_nonce_in=["style-src"],
    )
    init_request_id(app)
    _register_blueprints(app)
    _register_cli(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from app.api import auth, envelope, health, users

    envelope.register_error_handlers(app)
    for module in (auth, users, health):
        app.register_blueprint(module.bp)


def _register_cli(app: Flask) -> None:
    from app.cli import sessions, users

    app.cli.add_command(users.cli)
    app.cli.add_command(sessions.cli)
