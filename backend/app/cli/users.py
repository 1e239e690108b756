"""`flask users ...`: operator commands for accounts."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from app.cli import cli_actor, failure
from app.errors import AppError
from app.extensions import current_settings, db, token_denylist
from app.schemas.admin import SuspensionOut
from app.schemas.common import MAX_PAGE, MAX_PER_PAGE
from app.schemas.users import UserOut
from app.services import platform_admin, users

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
        raise failure(err.message, err.details)
    db.session.commit()
    click.echo(json.dumps(UserOut().dump(user)))


@cli.command("list")
@click.option("--q", "q", default=None, help="A part of the email or the name (any case).")
@click.option("--status", type=click.Choice(["active", "suspended"]), default=None)
@click.option("--page", type=click.IntRange(min=1, max=MAX_PAGE), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(min=1, max=MAX_PER_PAGE), default=MAX_PER_PAGE, show_default=True)
def list_users(q: str | None, status: str | None, page: int, per_page: int) -> None:
    """Print one page of accounts, newest first, as JSON lines; the total goes to stderr."""
    items, total = platform_admin.list_users(db.session, q=q, status=status, page=page, per_page=per_page)
    for user in items:
        click.echo(json.dumps(UserOut().dump(user)))
    click.echo(f"{total} account(s) match", err=True)


@cli.command("suspend")
@click.option("--email", required=True)
def suspend(email: str) -> None:
    """Suspend an account: its sessions end, its refresh tokens are revoked and its live access tokens denied."""
    try:
        suspension = platform_admin.suspend_user(
            db.session, actor=cli_actor(), user_id=platform_admin.find_user_by_email(db.session, email).id,
            denylist=token_denylist())
    except AppError as err:
        raise failure(err.message, err.details)
    db.session.commit()
    click.echo(json.dumps(SuspensionOut().dump(suspension)))


@cli.command("unsuspend")
@click.option("--email", required=True)
def unsuspend(email: str) -> None:
    """Make a suspended account active again."""
    try:
        user = platform_admin.unsuspend_user(db.session, actor=cli_actor(),
                                             user_id=platform_admin.find_user_by_email(db.session, email).id)
    except AppError as err:
        raise failure(err.message, err.details)
    db.session.commit()
    click.echo(json.dumps(UserOut().dump(user)))
