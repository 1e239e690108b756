"""One typed settings object, read from the environment.

Every field is documented where its default is set. `Settings.from_env()` is
what `make run` and gunicorn use; tests build `Settings(...)` directly.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

BACKEND_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BACKEND_DIR.parent

# The value shipped for development; production refuses to start with it.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"


class ConfigError(RuntimeError):
    """Settings that must not be used in this environment."""


def _default_database_url() -> str:
    return f"sqlite:///{BACKEND_DIR / 'instance' / 'gatehouse.db'}"


def _coerce(name: str, annotation: str, raw: str) -> object:
    if annotation == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if annotation.endswith("| None"):
        return raw or None
    return raw


@dataclass(frozen=True)
class Settings:
    # "development" (default), "testing" or "production".
    ENV: str = "development"
    # Signs cookies and CSRF tokens. Must be set to a long random value in production.
    SECRET_KEY: str = DEV_SECRET_KEY
    # SQLAlchemy URL. Default: a SQLite file under backend/instance/.
    DATABASE_URL: str = field(default_factory=_default_database_url)
    # Redis for rate limits (and later the token denylist). None = in-process stores.
    REDIS_URL: str | None = None
    # Public base URL of this server; the OAuth issuer.
    ISSUER: str = "http://127.0.0.1:5000"
    # bcrypt work factor: 12 costs ~250 ms per hash on one core; tests use 4.
    BCRYPT_ROUNDS: int = 12
    # Sessions: sliding idle window, capped by an absolute lifetime from creation.
    SESSION_IDLE_TIMEOUT: int = 900
    SESSION_ABSOLUTE_TIMEOUT: int = 28800
    # Consecutive failed logins before the account locks, and for how long.
    LOGIN_MAX_FAILURES: int = 5
    LOGIN_LOCKOUT_SECONDS: int = 1800
    # Flask-Limiter rate strings, per client IP.
    RATELIMIT_LOGIN: str = "10 per minute"
    RATELIMIT_REGISTER: str = "5 per minute"
    # Prefix for rate-limit keys in Redis (lets several deployments share one Redis).
    RATELIMIT_KEY_PREFIX: str = "gatehouse"
    # Number of reverse proxies in front of the app whose X-Forwarded-* headers
    # we trust. 0 = use the socket peer address; never trust a client-set header.
    TRUSTED_PROXY_COUNT: int = 0
    # Largest accepted request body, in bytes (nginx enforces the same limit).
    MAX_CONTENT_LENGTH: int = 1024 * 1024
    # Logging: "json" (default in production) or "text".
    LOG_FORMAT: str | None = None
    LOG_LEVEL: str = "INFO"

    @property
    def is_production(self) -> bool:
        return self.ENV == "production"

    @property
    def log_format(self) -> str:
        return self.LOG_FORMAT or ("json" if self.is_production else "text")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read every field from the environment variable of the same name.

        `GATEHOUSE_ENV` selects the environment. Unknown variables are ignored.

        Raises:
            ConfigError: a value that cannot be parsed, naming its variable.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if "GATEHOUSE_ENV" in env:
            values["ENV"] = env["GATEHOUSE_ENV"]
        for f in dataclasses.fields(cls):
            if f.name == "ENV" or f.name not in env:
                continue
            values[f.name] = _coerce(f.name, f.type, env[f.name])
        return cls(**values)

    def check(self) -> None:
        """Refuse settings that are unsafe for the chosen environment.

        Raises:
            ConfigError: naming each variable that must be set, and how.
        """
        if self.ENV not in {"development", "testing", "production"}:
            raise ConfigError(f"GATEHOUSE_ENV must be development, testing or production, not {self.ENV!r}")
        if self.SESSION_IDLE_TIMEOUT > self.SESSION_ABSOLUTE_TIMEOUT:
            raise ConfigError("SESSION_IDLE_TIMEOUT must not exceed SESSION_ABSOLUTE_TIMEOUT")
        if not self.is_production:
            return
        problems = []
        if not self.SECRET_KEY or self.SECRET_KEY == DEV_SECRET_KEY or len(self.SECRET_KEY) < 32:
            problems.append(
                "SECRET_KEY: set a random value of at least 32 characters, e.g. "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if self.DATABASE_URL.startswith("sqlite"):
            problems.append("DATABASE_URL: set a PostgreSQL URL, e.g. postgresql+psycopg://user:pass@host/db")
        if not self.REDIS_URL:
            problems.append("REDIS_URL: set a Redis URL, e.g. redis://host:6379/0 (rate limits are shared across instances)")
        if problems:
            raise ConfigError("Refusing to start in production:\n  - " + "\n  - ".join(problems))
