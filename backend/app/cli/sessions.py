"""`flask sessions ...`: session housekeeping."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import db
from app.services import revocations, sessions

cli = AppGroup("sessions", help="Session housekeeping.")


@cli.command("cleanup")
def cleanup() -> None:
    """Mark every session whose expiry has passed as ended, and delete the denials of access tokens
    that have expired anyway."""
    expired = sessions.expire_stale_sessions(db.session)
    pruned = revocations.prune_lapsed_denials(db.session)
    db.session.commit()
    click.echo(f"expired {expired} session(s)")
    click.echo(f"pruned {pruned} lapsed denial(s)")
