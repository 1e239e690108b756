"""`flask keys list/rotate/ensure`, and the keyring the app sets up at startup."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from app.config import Settings
from app.services.keys import KeyState, KeyStore, load_keys
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, SIGNING_KEYS_DIR=str(tmp_path))


@pytest.fixture
def store(app: Flask) -> KeyStore:
    return app.extensions["gatehouse.keys"]


def invoke(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=["keys", *args])


def table(output: str) -> dict[str, dict[str, str]]:
    """`flask keys list` output, by kid."""
    header, *rows = [line.split() for line in output.splitlines()]
    assert header == ["KID", "ALG", "STATE", "CREATED", "ACTIVATES", "EXPIRES"]
    return {row[0]: dict(zip(map(str.lower, header), row)) for row in rows}


def test_app_creates_a_key_per_alg_at_startup_outside_production(app: Flask, tmp_path: Path) -> None:
    assert sorted(k.alg for k in load_keys(tmp_path)) == ["ES256", "RS256"]


def test_keys_list_shows_every_key_with_its_state(app: Flask, store: KeyStore) -> None:
    result = invoke(app, "list")

    assert result.exit_code == 0, result.output
    rows = table(result.output)
    assert {kid: (row["alg"], row["state"], row["expires"]) for kid, row in rows.items()} == {
        store.signing_key("RS256").kid: ("RS256", "active", "-"),
        store.signing_key("ES256").kid: ("ES256", "active", "-"),
    }


def test_keys_rotate_publishes_a_key_that_signs_after_the_default_delay(app: Flask, store: KeyStore,
                                                                        settings: Settings) -> None:
    old = store.signing_key("RS256")

    result = invoke(app, "rotate")

    assert result.exit_code == 0, result.output
    (new,) = [k for k in load_keys(settings.SIGNING_KEYS_DIR) if k.alg == "RS256" and k != old]
    assert f"new RS256 key {new.kid}" in result.output
    assert f"(in {settings.KEY_ACTIVATION_DELAY} s)" in result.output
    assert new.kid in {jwk["kid"] for jwk in store.jwks()["keys"]}
    assert store.signing_key("RS256") == old
    assert table(invoke(app, "list").output)[new.kid]["state"] == "next"


def test_keys_rotate_now_signs_at_once_and_warns(app: Flask, store: KeyStore, settings: Settings) -> None:
    old = store.signing_key("ES256")

    result = invoke(app, "rotate", "--alg", "ES256", "--now")

    assert result.exit_code == 0, result.output
    new = store.signing_key("ES256")
    assert new != old and f"new ES256 key {new.kid}" in result.stdout
    assert "may reject new tokens" in result.stderr
    rows = table(invoke(app, "list").output)
    assert rows[old.kid]["state"] == "retired" and rows[old.kid]["expires"] != "-"
    assert rows[new.kid]["state"] == "active"


def test_keys_rotate_activate_in(app: Flask, store: KeyStore) -> None:
    result = invoke(app, "rotate", "--activate-in", "30")

    assert result.exit_code == 0, result.output
    assert "(in 30 s)" in result.output
    assert sorted(state for _, state in store.states()) == [KeyState.ACTIVE, KeyState.ACTIVE, KeyState.NEXT]


@pytest.mark.parametrize("args", [
    ["--now", "--activate-in", "30"],
    ["--activate-in", "-1"],
    ["--alg", "HS256"],
])
def test_keys_rotate_rejects_bad_options(app: Flask, tmp_path: Path, args: list[str]) -> None:
    result = invoke(app, "rotate", *args)

    assert result.exit_code == 2, result.output
    assert len(load_keys(tmp_path)) == 2


def test_keys_ensure_creates_only_what_is_missing(app: Flask, store: KeyStore, tmp_path: Path) -> None:
    es256 = store.signing_key("ES256")
    for ext in (".pem", ".json"):
        (tmp_path / f"{es256.kid}{ext}").unlink()

    first = invoke(app, "ensure")
    second = invoke(app, "ensure")

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    new = store.signing_key("ES256")
    assert first.output == f"created ES256 key {new.kid}, active now\n"
    assert "has an active key" in second.output
    assert len(load_keys(tmp_path)) == 2


def test_keys_commands_report_a_broken_directory(app: Flask, tmp_path: Path) -> None:
    (tmp_path / "stray.json").write_text("{}")

    for command in ("list", "ensure", "rotate"):
        result = invoke(app, command)
        assert result.exit_code == 1, (command, result.output)
        assert "stray.json has no matching stray.pem" in result.output


def test_production_does_not_generate_keys_and_logs_how_to(database_url: str, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(
        database_url, ENV="production", SIGNING_KEYS_DIR=str(tmp_path / "keys"),
        # Never connected to: creating the app opens no connection.
        DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none", REDIS_URL="redis://127.0.0.1:9/0",
        ISSUER="https://id.example.test", MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1",
        MAIL_FROM="Gatehouse <no-reply@id.example.test>",
    )

    with caplog.at_level(logging.ERROR, logger="app"):
        app = create_app(settings)

    assert not os.path.exists(tmp_path / "keys")
    assert "flask keys rotate --alg RS256 --now" in caplog.text
    assert invoke(app, "ensure").exit_code == 0
    assert app.extensions["gatehouse.keys"].signing_key("RS256").alg == "RS256"
