"""`flask` commands; each calls services. Helpers the command groups share are here."""

from __future__ import annotations

from typing import Any

import click

from app.services.actor import Actor

# Recorded as the user agent of the audit events, which have no user behind them.
CLI_USER_AGENT = "gatehouse-cli"


def cli_actor() -> Actor:
    """The operator at the command line, as audit events record them."""
    return Actor(user=None, user_agent=CLI_USER_AGENT)


def _messages(details: Any, prefix: str = "") -> list[str]:
    """Flatten marshmallow or ValidationFailed details into 'field: message' lines."""
    if isinstance(details, dict):
        return [line for key, value in details.items()
                for line in _messages(value, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(details, list):
        return [line for value in details for line in _messages(value, prefix)]
    return [f"{prefix}: {details}" if prefix else str(details)]


def failure(message: str, details: Any) -> click.ClickException:
    """A command's failure: the message, then one 'field: message' line per detail."""
    return click.ClickException("\n  ".join([message, *_messages(details)]))
