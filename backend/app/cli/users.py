"""`flask users ...`: operator commands for accounts."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from app.errors import AppError
from app.extensions import current_settings, db
from app.schemas.users import UserOut
from app.services import users

cli = AppGroup("users", help="Manage user accounts.")


@cli.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True, help="Subject to the password policy.")
@click.option("--name", default="")
@click.option("--admin", is_flag=True, help="Make the user a platform administrator.")
def create(email: str, password: str, name: str, admin: bool) -> None:
    """Create an active user and print it as JSON."""
    try:
        user = users.create_user(db.session, email=email, password=password, name=name,
                                 bcrypt_rounds=current_settings().BCRYPT_ROUNDS, is_platform_admin=admin)
    except AppError as err:
        raise click.ClickException(f"{err.message} {json.dumps(err.details)}" if err.details else err.message)
    db.session.commit()
    click.echo(json.dumps(UserOut().dump(user)))
