"""Unbound extension singletons, bound to an app in `create_app`."""

from flask import current_app
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from redis import Redis

from app.config import Settings
from app.models.base import Base
from app.security.client_ip import client_ip
from app.services.clients import ClientCache
from app.services.keys import KeyStore

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
# CSRF is checked explicitly by the HTML form handlers (WTF_CSRF_CHECK_DEFAULT=False):
# protocol and API endpoints authenticate with tokens, not cookies.
csrf = CSRFProtect()
# Limits are declared per route; storage comes from RATELIMIT_STORAGE_URI at init.
limiter = Limiter(key_func=client_ip, headers_enabled=True, retry_after="delta-seconds")


def redis_client() -> Redis | None:
    """The app's Redis client, or None when REDIS_URL is not set."""
    return current_app.extensions.get("gatehouse.redis")


def current_settings() -> Settings:
    """The Settings of the app handling this request or CLI command."""
    return current_app.extensions["gatehouse.settings"]


def key_store() -> KeyStore:
    """The signing keyring of the app handling this request or CLI command."""
    return current_app.extensions["gatehouse.keys"]


def client_cache() -> ClientCache:
    """The client cache of the app handling this request (see services/clients.py)."""
    return current_app.extensions["gatehouse.client_cache"]
