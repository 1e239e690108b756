"""Mail in tests: the messages the file backend wrote, the invitation link in a body, a port for SMTP."""

from __future__ import annotations

import re
import socket
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_LINK = re.compile(r"https?://\S+/invitations/accept\?\S+")


def read_outbox(directory: str | Path) -> list[EmailMessage]:
    """Every .eml file in the outbox, oldest first (file names start with the time)."""
    paths = sorted(Path(directory).glob("*.eml"))
    return [BytesParser(policy=policy.default).parsebytes(path.read_bytes()) for path in paths]


def invitation_link(body: str) -> str:
    """The one invitation link in a message body."""
    links = _LINK.findall(body)
    assert len(links) == 1, links
    return links[0]


def invitation_token(body: str) -> str:
    return parse_qs(urlsplit(invitation_link(body)).query)["token"][0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a test SMTP server, or for a refused connection)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
