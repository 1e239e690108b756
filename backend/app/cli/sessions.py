"""`flask sessions ...`: session housekeeping."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import db
from app.services import sessions

cli = AppGroup("sessions", help="Session housekeeping.")


@cli.command("cleanup")
def cleanup() -> None:
    """Mark every session whose expiry has passed as ended."""
    expired = sessions.expire_stale_sessions(db.session)
    db.session.commit()
    click.echo(f"expired {expired} session(s)")
