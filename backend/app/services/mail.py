"""Outgoing mail: an .eml file outbox in development and testing, SMTP in production.

Changes that send mail queue their messages on the database session (`queue`); create_app
sends them once the transaction commits and drops them when it rolls back, so a change that
is undone never emails anyone. Message bodies carry one-time links: they are never logged.
"""

from __future__ import annotations

import atexit
import logging
import os
import smtplib
import ssl
import threading
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from queue import SimpleQueue
from typing import Protocol

from sqlalchemy.orm import Session

from app.config import Settings
from app.models.base import utcnow

log = logging.getLogger(__name__)

# Session.info key of the messages waiting for the transaction to commit.
OUTGOING_MAIL_KEY = "gatehouse.outgoing_mail"


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    # Plain text. It may carry a secret link: never log it.
    body: str


class Mailer(Protocol):
    def send(self, message: Message) -> None:
        """Deliver one message, or raise."""


def build_email(message: Message, sender: str) -> EmailMessage:
    """The RFC 5322 message: From, To, Subject, Date, Message-ID and a text/plain body.

    Raises:
        ValueError: a header value with a line break (header injection).
    """
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = format_datetime(utcnow())
    # The sender's domain, not make_msgid's default socket.getfqdn(), which can block on DNS.
    email["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or "localhost")
    email.set_content(message.body)
    return email


class FileOutbox:
    """Development and testing: each message becomes one .eml file in `directory`.

    The directory is created 0700 and each file 0600: the messages carry live invitation links.
    """

    def __init__(self, directory: str | Path, *, sender: str) -> None:
        self.directory = Path(directory)
        self.sender = sender

    def send(self, message: Message) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / f"{utcnow():%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(bytes(build_email(message, self.sender)))
        log.info("mail written to the outbox: %s", path)


class SMTPMailer:
    """Production: one SMTP connection per message, with STARTTLS or implicit TLS, and AUTH when configured."""

    def __init__(self, *, host: str, port: int, sender: str, username: str | None = None,
                 password: str | None = None, starttls: bool = True, use_ssl: bool = False, timeout: int = 10,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.starttls, self.use_ssl, self.timeout = starttls, use_ssl, timeout
        # Certificates are verified against the system's CAs unless a context is given.
        self.ssl_context = ssl_context or ssl.create_default_context()

    def send(self, message: Message) -> None:
        email = build_email(message, self.sender)
        if self.use_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                  context=self.ssl_context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.starttls:
                smtp.starttls(context=self.ssl_context)
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(email)


class BackgroundMailer:
    """Delivers through `mailer` on a thread of its own, so that a request which emails someone answers as
    soon as one which does not: the forgot-password and resend pages must not tell, by how long they take,
    whether an address has an account (issue 15 §1). The thread starts with the first message of each
    process (a server that forks after building the app gets one per worker); messages still waiting when
    the process exits are delivered first, for up to `drain_seconds`. A failure is logged as send_queued
    logs one."""

    def __init__(self, mailer: Mailer, *, drain_seconds: float = 10) -> None:
        self.mailer = mailer
        self._waiting: SimpleQueue[Message] = SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        atexit.register(self.flush, drain_seconds)

    def send(self, message: Message) -> None:
        with self._idle:
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._deliver, name="gatehouse-mail", daemon=True)
                self._thread.start()
        self._waiting.put(message)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message handed over so far is delivered or has failed; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _deliver(self) -> None:
        while True:
            message = self._waiting.get()
            try:
                self.mailer.send(message)
            except Exception as err:  # any failure: log it, deliver the rest
                _log_failure(message, err)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()


def mailer_from_settings(settings: Settings) -> Mailer:
    if settings.MAIL_BACKEND == "smtp":
        assert settings.SMTP_HOST is not None  # Settings.check refuses smtp without a host
        return BackgroundMailer(SMTPMailer(
            host=settings.SMTP_HOST, port=settings.smtp_port, sender=settings.MAIL_FROM,
            username=settings.SMTP_USERNAME, password=settings.SMTP_PASSWORD, starttls=settings.SMTP_STARTTLS,
            use_ssl=settings.SMTP_SSL, timeout=settings.SMTP_TIMEOUT))
    # A file is written in microseconds, in the request: what tests and a developer read at once.
    return FileOutbox(settings.MAIL_OUTBOX_DIR, sender=settings.MAIL_FROM)


def _log_failure(message: Message, err: Exception) -> None:
    """The subject and the error, never the body (it may carry a one-time link)."""
    log.error("mail not sent (%s): %s: %s", message.subject, type(err).__name__, err)


def queue(db: Session, message: Message) -> None:
    """Send `message` once the session's current transaction commits; a rollback drops it."""
    db.connection()  # begins the transaction if none has: the message belongs to it
    db.info.setdefault(OUTGOING_MAIL_KEY, []).append(message)


def queued(db: Session) -> list[Message]:
    """The messages waiting for the session's transaction to commit."""
    return list(db.info.get(OUTGOING_MAIL_KEY, []))


def send_queued(db: Session, mailer: Mailer) -> int:
    """Send the messages queued in the transaction that just committed; returns how many went out.

    A failed message is logged (subject and error, never the body) and the others are still
    sent: the change that queued it is committed, and can be repeated (an invitation revoked
    and sent again).
    """
    sent = 0
    for message in db.info.pop(OUTGOING_MAIL_KEY, []):
        try:
            mailer.send(message)
        except Exception as err:  # any failure of any backend: the commit stands, the rest still go
            _log_failure(message, err)
        else:
            sent += 1
    return sent


def drop_queued(db: Session) -> None:
    """Forget the messages of a transaction that rolled back."""
    db.info.pop(OUTGOING_MAIL_KEY, None)
