"""`flask secrets ...`: secrets stored encrypted under ENCRYPTION_KEYS (services/stored_secrets.py)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.cli import cli_actor, failure
from app.errors import AppError
from app.extensions import db, field_cipher
from app.services import stored_secrets

cli = AppGroup("secrets", help="Manage secrets stored encrypted in the database.")


@cli.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored secret under the first key of ENCRYPTION_KEYS.

    Rotating a key: put the new key first in ENCRYPTION_KEYS (keep the old one after it) on every
    instance, run this, then remove the old key.
    """
    try:
        rotated = stored_secrets.rotate_stored_secrets(db.session, actor=cli_actor(), cipher=field_cipher())
    except AppError as err:
        raise failure(err.message, err.details) from None
    db.session.commit()
    for table, count in sorted(rotated.items()):
        click.echo(f"{table}: {count} re-encrypted")
    click.echo(f"{sum(rotated.values())} secrets re-encrypted under the first key of ENCRYPTION_KEYS")
