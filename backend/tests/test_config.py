"""Settings.from_env, and create_app refusing settings that are unsafe for their environment."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from app import create_app
from app.config import DEV_SECRET_KEY, ConfigError, Settings
from app.security.crypto import FieldCipher

# What an operator sets for production (.env.example, docker-compose.yml). create_app
# connects to neither store, so the hosts need not be reachable.
PRODUCTION_ENV = {
    "GATEHOUSE_ENV": "production",
    "SECRET_KEY": "p" * 48,
    "DATABASE_URL": "postgresql+psycopg://gatehouse:pw@127.0.0.1:1/gatehouse",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "ISSUER": "https://auth.example.com",
    "MAIL_BACKEND": "smtp",
    "SMTP_HOST": "smtp.example.com",
    "MAIL_FROM": "Gatehouse <no-reply@example.com>",
    "ENCRYPTION_KEYS": "Qkj4VhvX7bF5w2tq9KZrX0m3d1uP6yEoJcN8sLaHgTI=",
}
PRODUCTION_VARIABLES = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ISSUER", "MAIL_BACKEND", "SMTP_HOST", "MAIL_FROM",
                        "ENCRYPTION_KEYS")


def _env(**changes: str | None) -> dict[str, str]:
    """PRODUCTION_ENV with some variables changed; None removes one."""
    env = dict(PRODUCTION_ENV)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# --- Settings.from_env ---------------------------------------------------------------------------


def test_from_env_parses_int_fields():
    settings = Settings.from_env({"BCRYPT_ROUNDS": "6", "SESSION_IDLE_TIMEOUT": "60", "MAX_CONTENT_LENGTH": "2048"})

    assert (settings.BCRYPT_ROUNDS, settings.SESSION_IDLE_TIMEOUT, settings.MAX_CONTENT_LENGTH) == (6, 60, 2048)


@pytest.mark.parametrize("name", ["REDIS_URL", "LOG_FORMAT"])
def test_from_env_reads_empty_optional_value_as_none(name):
    assert getattr(Settings.from_env({name: ""}), name) is None


@pytest.mark.parametrize(("name", "raw"), [("REDIS_URL", "redis://127.0.0.1:6379/3"), ("LOG_FORMAT", "json")])
def test_from_env_reads_optional_value(name, raw):
    assert getattr(Settings.from_env({name: raw}), name) == raw


def test_from_env_without_variables_uses_defaults():
    assert Settings.from_env({}) == Settings()


def test_from_env_reads_environment_from_gatehouse_env_only():
    assert Settings.from_env({"GATEHOUSE_ENV": "testing"}).ENV == "testing"
    assert Settings.from_env({"ENV": "production"}).ENV == "development"


def test_from_env_ignores_unknown_variables():
    assert Settings.from_env({"PATH": "/usr/bin", "SECRET_KEYS": "x"}) == Settings()


@pytest.mark.parametrize("raw", ["twelve", "12.5", ""])
def test_from_env_with_non_integer_raises_config_error_naming_variable(raw):
    with pytest.raises(ConfigError, match="BCRYPT_ROUNDS"):
        Settings.from_env({"BCRYPT_ROUNDS": raw})


def test_signing_keys_rescan_defaults_to_one_second_and_zero_in_testing(tmp_path):
    assert Settings().signing_keys_rescan_seconds == 1
    assert Settings(ENV="testing").signing_keys_rescan_seconds == 0
    assert Settings.from_env({"SIGNING_KEYS_RESCAN_SECONDS": "5"}).signing_keys_rescan_seconds == 5
    app = create_app(Settings(ENV="testing", SIGNING_KEYS_RESCAN_SECONDS=5,
                              DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}", SIGNING_KEYS_DIR=str(tmp_path / "keys"),
                              MAIL_OUTBOX_DIR=str(tmp_path / "outbox")))
    assert app.extensions["gatehouse.keys"].rescan_interval == 5


@pytest.mark.parametrize("seconds", [-1, 600, 601])
def test_signing_keys_rescan_must_stay_below_the_activation_delay(seconds):
    """A key must be seen by every process before it starts signing (KEY_ACTIVATION_DELAY, 600)."""
    with pytest.raises(ConfigError, match="SIGNING_KEYS_RESCAN_SECONDS"):
        Settings(SIGNING_KEYS_RESCAN_SECONDS=seconds).check()


@pytest.mark.parametrize("changes", [
    {"LOGIN_MAX_FAILURES": 0},
    {"LOGIN_MAX_FAILURES": 6, "LOGIN_ACCOUNT_THROTTLE_FAILURES": 5},
], ids=["no-failure-allowed", "account-threshold-under-the-address-one"])
def test_login_thresholds_out_of_order_raise_config_error(changes):
    """The account-wide threshold only slows sign-in; it must not come before an address's own lock."""
    with pytest.raises(ConfigError, match="LOGIN_ACCOUNT_THROTTLE_FAILURES"):
        Settings(**changes).check()


# --- production refuses unsafe settings ----------------------------------------------------------


@pytest.mark.parametrize(("changes", "variable"), [
    ({"SECRET_KEY": None}, "SECRET_KEY"),
    ({"SECRET_KEY": DEV_SECRET_KEY}, "SECRET_KEY"),
    ({"SECRET_KEY": ""}, "SECRET_KEY"),
    ({"SECRET_KEY": "s" * 31}, "SECRET_KEY"),
    ({"DATABASE_URL": None}, "DATABASE_URL"),
    ({"DATABASE_URL": "sqlite:////var/lib/gatehouse/gatehouse.db"}, "DATABASE_URL"),
    ({"DATABASE_URL": "sqlite://"}, "DATABASE_URL"),
    ({"REDIS_URL": None}, "REDIS_URL"),
    ({"REDIS_URL": ""}, "REDIS_URL"),
    ({"ISSUER": None}, "ISSUER"),
    ({"ISSUER": "http://auth.example.com"}, "ISSUER"),
    ({"MAIL_BACKEND": None}, "MAIL_BACKEND"),
    ({"MAIL_BACKEND": "file"}, "MAIL_BACKEND"),
    ({"SMTP_HOST": None}, "SMTP_HOST"),
    ({"SMTP_HOST": ""}, "SMTP_HOST"),
    ({"MAIL_FROM": None}, "MAIL_FROM"),
    ({"SMTP_USERNAME": "gatehouse", "SMTP_STARTTLS": "false"}, "SMTP_STARTTLS"),
    ({"ENCRYPTION_KEYS": None}, "ENCRYPTION_KEYS"),
    ({"ENCRYPTION_KEYS": " , "}, "ENCRYPTION_KEYS"),
], ids=["secret-missing", "secret-default", "secret-empty", "secret-short", "database-missing",
        "database-sqlite-file", "database-sqlite-memory", "redis-missing", "redis-empty",
        "issuer-default-http", "issuer-http", "mail-backend-default-file", "mail-backend-file", "smtp-host-missing",
        "smtp-host-empty", "mail-from-default", "smtp-credentials-in-clear", "encryption-keys-missing",
        "encryption-keys-empty"])
def test_create_app_in_production_with_unsafe_setting_raises_config_error_naming_it(changes, variable):
    with pytest.raises(ConfigError) as raised:
        create_app(Settings.from_env(_env(**changes)))

    message = str(raised.value)
    assert variable in message
    assert [v for v in PRODUCTION_VARIABLES if v != variable and v in message] == []


def test_create_app_in_production_with_several_unsafe_settings_names_each():
    with pytest.raises(ConfigError) as raised:
        create_app(Settings.from_env({"GATEHOUSE_ENV": "production"}))

    assert all(variable in str(raised.value) for variable in PRODUCTION_VARIABLES)


@pytest.mark.parametrize("secret_key", ["k" * 32, "k" * 64], ids=["minimum-length", "long"])
def test_create_app_in_production_with_complete_settings_starts(secret_key):
    app = create_app(Settings.from_env(_env(SECRET_KEY=secret_key)))

    assert isinstance(app, Flask)
    assert app.extensions["gatehouse.settings"].is_production


@pytest.mark.parametrize("env_name", ["staging", "prod", "Production", ""])
def test_create_app_with_unknown_environment_raises_config_error(env_name):
    with pytest.raises(ConfigError, match="GATEHOUSE_ENV"):
        create_app(Settings.from_env({"GATEHOUSE_ENV": env_name}))


@pytest.mark.parametrize("env_name", ["development", "testing", "production"])
def test_create_app_with_idle_timeout_over_absolute_timeout_raises_config_error(env_name):
    env = _env(GATEHOUSE_ENV=env_name, SESSION_IDLE_TIMEOUT="3601", SESSION_ABSOLUTE_TIMEOUT="3600")

    with pytest.raises(ConfigError) as raised:
        create_app(Settings.from_env(env))

    assert "SESSION_IDLE_TIMEOUT" in str(raised.value) and "SESSION_ABSOLUTE_TIMEOUT" in str(raised.value)


@pytest.mark.parametrize(("changes", "variable"), [
    ({"MAIL_BACKEND": "console"}, "MAIL_BACKEND"),
    ({"MAIL_BACKEND": "smtp", "SMTP_HOST": None}, "SMTP_HOST"),
    ({"SMTP_STARTTLS": "true", "SMTP_SSL": "true"}, "SMTP_SSL"),
], ids=["unknown-backend", "smtp-without-host", "starttls-and-ssl"])
def test_create_app_in_development_with_unusable_mail_settings_raises_config_error(changes, variable):
    with pytest.raises(ConfigError, match=variable):
        create_app(Settings.from_env(_env(GATEHOUSE_ENV="development", **changes)))


def test_from_env_parses_smtp_settings():
    settings = Settings.from_env({"SMTP_PORT": "2525", "SMTP_STARTTLS": "false", "SMTP_SSL": "yes"})

    assert (settings.SMTP_PORT, settings.SMTP_STARTTLS, settings.SMTP_SSL) == (2525, False, True)


@pytest.mark.parametrize(("env", "port"), [({}, 587), ({"SMTP_SSL": "1", "SMTP_STARTTLS": "0"}, 465),
                                          ({"SMTP_PORT": "25"}, 25)], ids=["starttls", "ssl", "explicit"])
def test_smtp_port_defaults_by_tls_mode(env, port):
    assert Settings.from_env(env).smtp_port == port


def test_create_app_with_idle_timeout_equal_to_absolute_timeout_starts():
    app = create_app(Settings.from_env(_env(SESSION_IDLE_TIMEOUT="3600", SESSION_ABSOLUTE_TIMEOUT="3600")))

    assert app.extensions["gatehouse.settings"].SESSION_IDLE_TIMEOUT == 3600


# --- ENCRYPTION_KEYS ------------------------------------------------------------------------------

OTHER_FERNET_KEY = "n3Jk0JzLxWq2c9s5bV8tY1uR4eA7dG6hF0iK3mP2oQw="


@pytest.mark.parametrize("env_name", ["development", "testing", "production"])
def test_create_app_with_malformed_encryption_key_names_its_position_not_its_value(env_name):
    env = _env(GATEHOUSE_ENV=env_name, ENCRYPTION_KEYS=f"{OTHER_FERNET_KEY},not-a-fernet-key")

    with pytest.raises(ConfigError) as raised:
        create_app(Settings.from_env(env))

    assert "ENCRYPTION_KEYS: key 2 " in str(raised.value)
    assert "not-a-fernet-key" not in str(raised.value)


def test_encryption_keys_are_read_first_key_first_without_blanks():
    settings = Settings.from_env({"ENCRYPTION_KEYS": f" {OTHER_FERNET_KEY} ,, {PRODUCTION_ENV['ENCRYPTION_KEYS']}"})

    assert settings.encryption_keys == [OTHER_FERNET_KEY, PRODUCTION_ENV["ENCRYPTION_KEYS"]]


def test_create_app_in_development_without_encryption_keys_derives_one_and_logs_it(caplog):
    with caplog.at_level(logging.WARNING, logger="app"):
        app = create_app(Settings.from_env(_env(GATEHOUSE_ENV="development", ENCRYPTION_KEYS=None)))

    cipher = app.extensions["gatehouse.field_cipher"]
    assert cipher.decrypt(FieldCipher.derived_from(PRODUCTION_ENV["SECRET_KEY"]).encrypt("s")) == "s"
    assert "ENCRYPTION_KEYS is not set" in caplog.text


def test_create_app_with_encryption_keys_encrypts_with_the_first_and_logs_nothing_about_it(caplog):
    with caplog.at_level(logging.WARNING, logger="app"):
        keys = f"{OTHER_FERNET_KEY},{PRODUCTION_ENV['ENCRYPTION_KEYS']}"
        app = create_app(Settings.from_env(_env(ENCRYPTION_KEYS=keys)))

    ciphertext = app.extensions["gatehouse.field_cipher"].encrypt("s")
    assert FieldCipher.from_keys([OTHER_FERNET_KEY]).decrypt(ciphertext) == "s"
    assert "ENCRYPTION_KEYS" not in caplog.text


@pytest.mark.parametrize(("env_name", "raw", "allowed"), [
    ("development", None, True), ("testing", None, True), ("production", None, False),
    ("production", "true", True), ("development", "false", False),
])
def test_federation_allows_private_networks_outside_production_unless_set(env_name, raw, allowed):
    env = {"GATEHOUSE_ENV": env_name} | ({"FEDERATION_ALLOW_PRIVATE_NETWORKS": raw} if raw else {})

    assert Settings.from_env(env).federation_allow_private_networks is allowed
