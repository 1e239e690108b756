"""`flask sessions ...`: session housekeeping."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import db
from app.services import login_throttle, revocations, sessions

cli = AppGroup("sessions", help="Session housekeeping.")


@cli.command("cleanup")
def cleanup() -> None:
    """Mark every session whose expiry has passed as ended; delete the denials of access tokens that
    have expired anyway, and failed sign-in counts that have lapsed."""
    expired = sessions.expire_stale_sessions(db.session)
    denials = revocations.prune_lapsed_denials(db.session)
    counts = login_throttle.prune(db.session)
    db.session.commit()
    click.echo(f"expired {expired} session(s)")
    click.echo(f"pruned {denials} lapsed denial(s)")
    click.echo(f"deleted {counts} lapsed sign-in failure count(s)")
