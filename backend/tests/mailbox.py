"""Mail in tests: the messages the file backend wrote, the invitation, reset or verification link in a body, a port for SMTP."""

from __future__ import annotations

import re
import socket
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_LINK = re.compile(r"https?://\S+/invitations/accept\?\S+")
_RESET_LINK = re.compile(r"https?://\S+/password/reset\?\S+")
_VERIFY_LINK = re.compile(r"https?://\S+/email/verify\?\S+")


def read_outbox(directory: str | Path) -> list[EmailMessage]:
    """Every .eml file in the outbox, oldest first (file names start with the time)."""
    paths = sorted(Path(directory).glob("*.eml"))
    return [BytesParser(policy=policy.default).parsebytes(path.read_bytes()) for path in paths]


def _one_link(pattern: re.Pattern, body: str) -> str:
    links = pattern.findall(body)
    assert len(links) == 1, links
    return links[0]


def _token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def invitation_link(body: str) -> str:
    """The one invitation link in a message body."""
    return _one_link(_LINK, body)


def invitation_token(body: str) -> str:
    return _token_of(invitation_link(body))


def reset_link(body: str) -> str:
    """The one password-reset link in a message body."""
    return _one_link(_RESET_LINK, body)


def reset_token(body: str) -> str:
    return _token_of(reset_link(body))


def verification_link(body: str) -> str:
    """The one email-verification link in a message body."""
    return _one_link(_VERIFY_LINK, body)


def verification_token(body: str) -> str:
    return _token_of(verification_link(body))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a test SMTP server, or for a refused connection)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
