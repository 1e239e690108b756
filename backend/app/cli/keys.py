"""`flask keys ...`: the signing keyring (services/keys.py).

States follow from the clock, so these commands only ever add files; every
instance that shares SIGNING_KEYS_DIR sees a new key on its next request.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
from flask.cli import AppGroup

from app.extensions import current_settings, key_store
from app.services import keys

cli = AppGroup("keys", help="Manage the keys that sign tokens.")


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


@cli.command("list")
def list_keys() -> None:
    """Show every key with its state; "expires" is when it leaves JWKS."""
    store = key_store()
    try:
        # Straight from the files, not the store's cache: the operator sees what is on disk.
        states = keys.key_states(keys.load_keys(store.directory), now=datetime.now(UTC),
                                 max_token_lifetime=store.max_token_lifetime)
    except keys.KeyringError as err:
        raise click.ClickException(str(err))
    if not states:
        click.echo(f"no signing keys in {store.directory}; run `flask keys ensure`")
        return
    superseded = keys.superseded_times(key for key, _ in states)
    lifetime = timedelta(seconds=store.max_token_lifetime)
    rows = [("KID", "ALG", "STATE", "CREATED", "ACTIVATES", "EXPIRES")]
    for key, state in reversed(states):  # newest first
        until = superseded.get(key.kid)
        rows.append((key.kid, key.alg, str(state), _time(key.created_at), _time(key.activates_at),
                     _time(until + lifetime if until else None)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@cli.command("rotate")
@click.option("--alg", type=click.Choice(keys.SUPPORTED_ALGS), default="RS256", show_default=True)
@click.option("--activate-in", type=click.IntRange(min=0), default=None, metavar="SECONDS",
              help="Seconds the new key is published before it signs [default: KEY_ACTIVATION_DELAY].")
@click.option("--now", "activate_now", is_flag=True,
              help="Sign with the new key at once (first key, or a compromised one).")
def rotate(alg: str, activate_in: int | None, activate_now: bool) -> None:
    """Create a new key: published in JWKS now, signing after the activation delay."""
    if activate_now and activate_in is not None:
        raise click.UsageError("--now and --activate-in are mutually exclusive")
    settings = current_settings()
    delay = 0 if activate_now else (settings.KEY_ACTIVATION_DELAY if activate_in is None else activate_in)
    try:
        key = keys.rotate_key(settings.SIGNING_KEYS_DIR, alg=alg, activation_delay=delay)
    except (keys.KeyringError, ValueError) as err:  # ValueError: a negative KEY_ACTIVATION_DELAY
        raise click.ClickException(str(err))
    click.echo(f"new {alg} key {key.kid}")
    click.echo(f"published in JWKS now; signs from {_time(key.activates_at)} (in {delay} s)")
    if delay < settings.KEY_ACTIVATION_DELAY:
        click.echo(f"warning: relying parties that cached JWKS in the last {settings.KEY_ACTIVATION_DELAY} s "
                   "may reject new tokens until they fetch it again", err=True)


@cli.command("ensure")
def ensure() -> None:
    """Create an active key for each algorithm that has none (idempotent; for deploy scripts)."""
    directory = current_settings().SIGNING_KEYS_DIR
    try:
        created = keys.ensure_keys(directory)
    except keys.KeyringError as err:
        raise click.ClickException(str(err))
    for key in created:
        click.echo(f"created {key.alg} key {key.kid}, active now")
    if not created:
        click.echo(f"every algorithm ({', '.join(keys.SUPPORTED_ALGS)}) has an active key in {directory}")
