"""One typed settings object, read from the environment.

Every field is documented where its default is set. `Settings.from_env()` is
what `make run` and serve.py use; tests build `Settings(...)` directly.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from app.security.crypto import is_fernet_key

BACKEND_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BACKEND_DIR.parent

# A client may ask for access tokens living at most this long; signing keys are
# kept in JWKS for at least as long (Settings.key_retention).
MAX_CLIENT_ACCESS_TOKEN_LIFETIME = 3600
CLOCK_SKEW_MARGIN = 60

# The value shipped for development; production refuses to start with it.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"
# The sender shipped for development; production refuses it (relays reject @localhost).
DEV_MAIL_FROM = "Gatehouse <no-reply@localhost>"
# DNS_RESOLVER: an IPv4 address or a bracketed IPv6 address, and a port.
DNS_RESOLVER_FORMAT = re.compile(r"(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):\d{1,5}")


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
    if annotation == "bool":
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if annotation.endswith("| None"):
        return _coerce(name, annotation.removesuffix("| None").strip(), raw) if raw else None
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
    # Signing keys: one <kid>.pem + <kid>.json per key (services/keys.py). Generated
    # here on first start in development and testing; in production, mount a
    # persistent directory shared by every instance and run `flask keys ensure`.
    SIGNING_KEYS_DIR: str = str(REPO_DIR / "keys")
    # Seconds a rotated key is published in JWKS before it signs: longer than any
    # relying party caches our JWKS, so none meets a kid it has not fetched.
    KEY_ACTIVATION_DELAY: int = 600
    # Seconds a process trusts its last listing of SIGNING_KEYS_DIR: every token signed or
    # verified would otherwise list the directory again. A rotation is seen this long after it
    # at most, far inside KEY_ACTIVATION_DELAY. Unset: 1, or 0 in testing (tests rotate and look).
    SIGNING_KEYS_RESCAN_SECONDS: int | None = None
    # Lifetimes of the JWTs we sign, in seconds. A retired key stays in JWKS for
    # the longest of them after it stops signing.
    ACCESS_TOKEN_LIFETIME: int = 600
    ID_TOKEN_LIFETIME: int = 3600
    # bcrypt work factor: 12 costs ~250 ms per hash on one core; tests use 4.
    BCRYPT_ROUNDS: int = 12
    # Sessions: sliding idle window, capped by an absolute lifetime from creation.
    SESSION_IDLE_TIMEOUT: int = 900
    SESSION_ABSOLUTE_TIMEOUT: int = 28800
    # Failed sign-ins for one email from one address (IPv6: one /64) within LOGIN_LOCKOUT_SECONDS
    # that lock that address out of that email for LOGIN_LOCKOUT_SECONDS; other addresses, the
    # owner's among them, keep signing in. Unknown emails are counted and locked the same way, so
    # a lock tells nothing (services/login_throttle.py).
    LOGIN_MAX_FAILURES: int = 5
    LOGIN_LOCKOUT_SECONDS: int = 1800
    # Failed sign-ins for one email from all addresses together within LOGIN_LOCKOUT_SECONDS,
    # beyond which one attempt per LOGIN_ACCOUNT_THROTTLE_SECONDS is checked for that email and
    # the others answer 429 until the window ends: a slowdown for the owner, never a lock, and a
    # bound on how fast many addresses together can guess.
    LOGIN_ACCOUNT_THROTTLE_FAILURES: int = 25
    LOGIN_ACCOUNT_THROTTLE_SECONDS: int = 30
    # Flask-Limiter rate strings, per client IP.
    RATELIMIT_LOGIN: str = "10 per minute"
    RATELIMIT_REGISTER: str = "5 per minute"
    # Password-reset and verification emails asked for: per client IP, and per address typed
    # (whether or not an account has it, so a 429 tells nothing), page and API together.
    RATELIMIT_ACCOUNT_MAIL: str = "10 per hour"
    RATELIMIT_ACCOUNT_MAIL_PER_ADDRESS: str = "3 per hour"
    # Refused personal API keys (X-API-Key on /api, answered 401) per client IP; beyond it every
    # request from that IP that sends a key is 429 until the window passes.
    RATELIMIT_API_KEY_FAILURES: str = "10 per minute"
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
    # --- OAuth 2.0 / OpenID Connect ---
    # Authorization codes are single-use and short-lived (RFC 9700 §4.2.1 suggests under a minute or so).
    AUTHORIZATION_CODE_LIFETIME: int = 60
    REFRESH_TOKEN_LIFETIME: int = 30 * 24 * 3600
    # Seconds in which the immediately previous refresh token of a family may be
    # presented again and receives the same successor (two tabs refreshing at once).
    # 0 = strict: any reuse revokes the family (RFC 9700 §4.14.2).
    REFRESH_REUSE_GRACE_SECONDS: int = 0
    # Issue refresh tokens to first-party clients even without offline_access.
    FIRST_PARTY_REFRESH_WITHOUT_OFFLINE_ACCESS: bool = False
    # Extra CORS origins (comma-separated) besides those derived from redirect URIs.
    CORS_EXTRA_ORIGINS: str = ""
    # Name of the browser sign-in cookie.
    BROWSER_SESSION_COOKIE: str = "gatehouse_session"
    # Seconds the protocol endpoints may reuse a client they looked up (stores/client_cache.py,
    # ClientCache). Every use still checks the client's version (every committed change bumps it,
    # published through Redis when configured), so changes apply everywhere as soon as Redis
    # delivers them; this only bounds changes made in SQL written by hand or whose version bump
    # was lost. 0 turns the cache off. Unset: 30, or 0 in testing, where tests change client rows directly.
    CLIENT_CACHE_SECONDS: int | None = None
    # Whether each process mirrors the Redis denylist (stores/denylist.py, RedisDenylist) and answers
    # lookups from it. Turn it off while instances of a build before the mirror still run: the
    # revocations they make reach no mirror (every lookup then asks Redis).
    DENYLIST_MIRROR: bool = True
    # --- Accounts ---
    # Whether people may create their own accounts (/signup and POST /api/v1/auth/register);
    # false for invitation-only deployments: the sign-up page is hidden and both are refused.
    REGISTRATION_OPEN: bool = True
    # Whether a signed-in person whose email is unverified is stopped at /oauth2/authorize with the
    # "verify your email" page (prompt=none: interaction_required) instead of being sent on.
    REQUIRE_VERIFIED_EMAIL: bool = False
    # Seconds an emailed password-reset link works (once).
    PASSWORD_RESET_TTL_SECONDS: int = 1800
    # Seconds an emailed verification link works (once).
    EMAIL_VERIFICATION_TTL_SECONDS: int = 48 * 3600
    # --- Mail (invitations, password resets) ---
    # "file": each message is written as an .eml file into MAIL_OUTBOX_DIR (development and
    # testing; production refuses it). "smtp": sent through SMTP_HOST.
    MAIL_BACKEND: str = "file"
    # The From: address of every message. Production refuses the default.
    MAIL_FROM: str = DEV_MAIL_FROM
    # Where the file backend writes messages; created 0700, as they carry one-time links.
    MAIL_OUTBOX_DIR: str = str(BACKEND_DIR / "instance" / "outbox")
    # The SMTP relay. SMTP_PORT unset: 465 with SMTP_SSL, otherwise 587.
    SMTP_HOST: str | None = None
    SMTP_PORT: int | None = None
    # Optional SMTP AUTH credentials; production sends them only over TLS.
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    # STARTTLS on a plain connection (port 587), or SMTP_SSL for TLS from the first byte
    # (port 465); both off only for a relay on a trusted network (e.g. localhost).
    SMTP_STARTTLS: bool = True
    SMTP_SSL: bool = False
    # Seconds to wait for the SMTP server on connect and on each command.
    SMTP_TIMEOUT: int = 10
    # --- Secrets we must read back, and upstream identity providers (federation) ---
    # Fernet keys (comma-separated) that encrypt secrets stored in the database to be used again, such as
    # upstream client secrets. The first encrypts; every one decrypts. To rotate: put a new key first, run
    # `flask secrets rotate`, then drop the old one. Generate one with
    #   python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'
    # Required in production; unset elsewhere, a key is derived from SECRET_KEY (and the log says so).
    ENCRYPTION_KEYS: str = ""
    # Whether URLs of upstream providers (issuer, discovery, base URLs) may point at private, loopback or
    # link-local addresses. Unset: true in development and testing, false in production.
    FEDERATION_ALLOW_PRIVATE_NETWORKS: bool | None = None
    # The DNS resolver that looks up organizations' domain-verification TXT records, as host:port
    # (e.g. 127.0.0.1:53, [::1]:5353). Unset: the system's resolvers (/etc/resolv.conf).
    DNS_RESOLVER: str | None = None
    # Seconds one domain verification waits for DNS before answering that the lookup failed.
    DNS_TIMEOUT_SECONDS: int = 5

    @property
    def is_production(self) -> bool:
        return self.ENV == "production"

    @property
    def signing_keys_rescan_seconds(self) -> int:
        if self.SIGNING_KEYS_RESCAN_SECONDS is not None:
            return self.SIGNING_KEYS_RESCAN_SECONDS
        return 0 if self.ENV == "testing" else 1

    @property
    def client_cache_seconds(self) -> int:
        if self.CLIENT_CACHE_SECONDS is not None:
            return self.CLIENT_CACHE_SECONDS
        return 0 if self.ENV == "testing" else 30

    @property
    def key_retention(self) -> int:
        """Seconds a superseded signing key stays in JWKS: the longest-lived JWT any
        client can hold (per-client access-token lifetimes are capped at
        MAX_CLIENT_ACCESS_TOKEN_LIFETIME), plus a margin for clock skew between instances."""
        return max(self.ACCESS_TOKEN_LIFETIME, self.ID_TOKEN_LIFETIME, MAX_CLIENT_ACCESS_TOKEN_LIFETIME) \
            + CLOCK_SKEW_MARGIN

    @property
    def secure_cookies(self) -> bool:
        return self.ISSUER.startswith("https://")

    @property
    def cors_extra_origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.CORS_EXTRA_ORIGINS.split(",") if o.strip())

    @property
    def smtp_port(self) -> int:
        if self.SMTP_PORT is not None:
            return self.SMTP_PORT
        return 465 if self.SMTP_SSL else 587

    @property
    def encryption_keys(self) -> list[str]:
        return [key.strip() for key in self.ENCRYPTION_KEYS.split(",") if key.strip()]

    @property
    def federation_allow_private_networks(self) -> bool:
        if self.FEDERATION_ALLOW_PRIVATE_NETWORKS is not None:
            return self.FEDERATION_ALLOW_PRIVATE_NETWORKS
        return not self.is_production

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
        if not 1 <= self.LOGIN_MAX_FAILURES <= self.LOGIN_ACCOUNT_THROTTLE_FAILURES:
            raise ConfigError("LOGIN_MAX_FAILURES must be at least 1, "
                              "and LOGIN_ACCOUNT_THROTTLE_FAILURES at least as much")
        if self.client_cache_seconds < 0:
            raise ConfigError("CLIENT_CACHE_SECONDS must be 0 (off) or more")
        if not 0 <= self.signing_keys_rescan_seconds < self.KEY_ACTIVATION_DELAY:
            raise ConfigError("SIGNING_KEYS_RESCAN_SECONDS must be 0 or more, and less than KEY_ACTIVATION_DELAY")
        if self.MAIL_BACKEND not in {"file", "smtp"}:
            raise ConfigError(f"MAIL_BACKEND must be file or smtp, not {self.MAIL_BACKEND!r}")
        if self.MAIL_BACKEND == "smtp" and not self.SMTP_HOST:
            raise ConfigError("SMTP_HOST must be set for the smtp mail backend")
        if self.SMTP_STARTTLS and self.SMTP_SSL:
            raise ConfigError("SMTP_STARTTLS and SMTP_SSL exclude each other: set one (or neither, for a local relay)")
        if self.DNS_RESOLVER is not None and not DNS_RESOLVER_FORMAT.fullmatch(self.DNS_RESOLVER):
            raise ConfigError(f"DNS_RESOLVER must be host:port (an IP address and a port), not {self.DNS_RESOLVER!r}")
        if not 1 <= self.DNS_TIMEOUT_SECONDS <= 60:
            raise ConfigError("DNS_TIMEOUT_SECONDS must be between 1 and 60")
        for position, key in enumerate(self.encryption_keys, start=1):
            if not is_fernet_key(key):
                # The position, never the value: this message reaches logs.
                raise ConfigError(f"ENCRYPTION_KEYS: key {position} is not a Fernet key (32 url-safe base64 bytes)")
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
        if not self.ISSUER.startswith("https://"):
            problems.append("ISSUER: set the public https:// URL of this server (cookies are Secure, tokens carry it)")
        if not self.REDIS_URL:
            problems.append("REDIS_URL: set a Redis URL, e.g. redis://host:6379/0 (rate limits are shared across instances)")
        if self.MAIL_BACKEND != "smtp":
            problems.append("MAIL_BACKEND: set smtp (the file outbox keeps invitations on this machine)")
        if not self.SMTP_HOST:
            problems.append("SMTP_HOST: set the SMTP relay that sends invitations, e.g. smtp.example.com")
        if self.MAIL_FROM == DEV_MAIL_FROM:
            problems.append("MAIL_FROM: set the sender address, e.g. Gatehouse <no-reply@example.com>")
        if self.SMTP_USERNAME and not (self.SMTP_STARTTLS or self.SMTP_SSL):
            problems.append("SMTP_STARTTLS: turn on STARTTLS (or SMTP_SSL) so SMTP_PASSWORD is not sent in clear")
        if not self.encryption_keys:
            problems.append(
                "ENCRYPTION_KEYS: set a Fernet key that encrypts stored upstream secrets, e.g. "
                "python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            )
        if problems:
            raise ConfigError("Refusing to start in production:\n  - " + "\n  - ".join(problems))
