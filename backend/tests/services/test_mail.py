"""services.mail: the file outbox, SMTP delivery to a real local server (aiosmtpd), and
mail queued in a transaction going out only when it commits."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import smtplib
import ssl
import stat
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from email import policy
from email.parser import BytesParser

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.config import Settings
from app.extensions import db
from app.models.base import utcnow
from app.services import mail
from tests.conftest import make_settings
from tests.mailbox import free_port, read_outbox

SENDER = "Gatehouse <no-reply@gatehouse.test>"
# Stands in for an invitation link: whatever the body holds must never reach the logs.
SECRET_BODY = "Open https://auth.example.com/invitations/accept?token=not-for-the-logs-0123456789"
SMTP_USER, SMTP_PASSWORD = "gatehouse", "relay password"
# The test SMTP server refuses this recipient.
UNKNOWN_RECIPIENT = "nobody@example.com"


def message(to: str = "alice@example.com", subject: str = "Invitation to join Acme") -> mail.Message:
    return mail.Message(to=to, subject=subject, body=SECRET_BODY)


# --- the file outbox -------------------------------------------------------------------------


def test_file_outbox_writes_message_as_eml(tmp_path):
    outbox = mail.FileOutbox(tmp_path / "outbox", sender=SENDER)

    outbox.send(message())

    [written] = read_outbox(tmp_path / "outbox")
    assert (written["From"], written["To"], written["Subject"]) == (SENDER, "alice@example.com",
                                                                    "Invitation to join Acme")
    assert written["Message-ID"].endswith("@gatehouse.test>")
    assert written["Date"]
    assert written.get_content().strip() == SECRET_BODY


def test_file_outbox_creates_private_directory_and_files(tmp_path):
    outbox = mail.FileOutbox(tmp_path / "outbox", sender=SENDER)

    outbox.send(message())

    [path] = (tmp_path / "outbox").glob("*.eml")
    assert stat.S_IMODE((tmp_path / "outbox").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_outbox_writes_one_file_per_message(tmp_path):
    outbox = mail.FileOutbox(tmp_path, sender=SENDER)

    outbox.send(message(to="a@example.com"))
    outbox.send(message(to="b@example.com"))

    assert sorted(m["To"] for m in read_outbox(tmp_path)) == ["a@example.com", "b@example.com"]


def test_file_outbox_never_logs_the_body(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)

    mail.FileOutbox(tmp_path, sender=SENDER).send(message())

    assert "outbox" in caplog.text
    assert "not-for-the-logs" not in caplog.text


def test_build_email_with_line_break_in_subject_raises():
    """A line break in a header would let a value add headers of its own (header injection)."""
    with pytest.raises(ValueError):
        mail.build_email(message(subject="Hello\r\nBcc: victim@example.com"), SENDER)


def test_mailer_from_settings_picks_the_backend():
    assert isinstance(mail.mailer_from_settings(Settings()), mail.FileOutbox)
    smtp = mail.mailer_from_settings(Settings(MAIL_BACKEND="smtp", SMTP_HOST="smtp.example.com"))
    assert isinstance(smtp, mail.BackgroundMailer) and isinstance(smtp.mailer, mail.SMTPMailer)


# --- SMTP, against a real server on 127.0.0.1 --------------------------------------------------


@dataclass
class RecordingHandler:
    """aiosmtpd handler that keeps every message it is given, and who authenticated."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address == UNKNOWN_RECIPIENT:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            SMTP_USER.encode(), SMTP_PASSWORD.encode())
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 235 or 535 itself


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1: the server's context, and a client context trusting it."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Certificate:
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    return Certificate(server=server, client=ssl.create_default_context(cafile=str(cert_path)))


def auth_options(handler: RecordingHandler) -> dict:
    """Server options for SMTP AUTH, offered only after STARTTLS."""
    return {"authenticator": handler.authenticate, "auth_require_tls": True}


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def smtp_server(handler):
    """Start an SMTP server on a free port with the given options; stopped after the test."""
    started = []

    def start(with_handler: RecordingHandler | None = None, **options) -> int:
        port = free_port()
        controller = Controller(with_handler or handler, hostname="127.0.0.1", port=port, **options)
        controller.start()
        started.append(controller)
        return port

    yield start
    for controller in started:
        controller.stop()


def parsed(content: bytes):
    return BytesParser(policy=policy.default).parsebytes(content)


def test_smtp_mailer_delivers_message(smtp_server, handler):
    port = smtp_server()
    mailer = mail.SMTPMailer(host="127.0.0.1", port=port, sender=SENDER, starttls=False)

    mailer.send(message())

    [(mail_from, rcpt_tos, content)] = handler.received
    assert (mail_from, rcpt_tos) == ("no-reply@gatehouse.test", ["alice@example.com"])
    delivered = parsed(content)
    assert delivered["Subject"] == "Invitation to join Acme"
    assert delivered.get_content().strip() == SECRET_BODY


def test_smtp_mailer_with_starttls_authenticates_over_tls(smtp_server, handler, certificate):
    port = smtp_server(tls_context=certificate.server, require_starttls=True, **auth_options(handler))
    mailer = mail.SMTPMailer(host="127.0.0.1", port=port, sender=SENDER, username=SMTP_USER,
                             password=SMTP_PASSWORD, starttls=True, ssl_context=certificate.client)

    mailer.send(message())

    assert handler.logins == [SMTP_USER]
    assert len(handler.received) == 1


def test_smtp_mailer_with_implicit_tls_delivers_message(smtp_server, handler, certificate):
    port = smtp_server(ssl_context=certificate.server)
    mailer = mail.SMTPMailer(host="127.0.0.1", port=port, sender=SENDER, starttls=False, use_ssl=True,
                             ssl_context=certificate.client)

    mailer.send(message())

    assert len(handler.received) == 1


def test_smtp_mailer_refuses_server_certificate_it_does_not_trust(smtp_server, handler, certificate):
    port = smtp_server(tls_context=certificate.server, require_starttls=True)
    mailer = mail.SMTPMailer(host="127.0.0.1", port=port, sender=SENDER, starttls=True)  # system CAs only

    with pytest.raises(ssl.SSLCertVerificationError):
        mailer.send(message())

    assert handler.received == []


def test_smtp_mailer_with_wrong_password_raises_and_sends_nothing(smtp_server, handler, certificate):
    port = smtp_server(tls_context=certificate.server, require_starttls=True, **auth_options(handler))
    mailer = mail.SMTPMailer(host="127.0.0.1", port=port, sender=SENDER, username=SMTP_USER,
                             password="not the password", starttls=True, ssl_context=certificate.client)

    with pytest.raises(smtplib.SMTPAuthenticationError):
        mailer.send(message())

    assert handler.received == []


def test_mailer_from_settings_sends_through_configured_smtp_server(smtp_server, handler):
    port = smtp_server()
    settings = Settings(MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_STARTTLS=False,
                        MAIL_FROM=SENDER)

    mailer = mail.mailer_from_settings(settings)
    mailer.send(message())

    assert mailer.flush(timeout=10)
    assert [rcpt for _, rcpt, _ in handler.received] == [["alice@example.com"]]


@dataclass
class HeldHandler(RecordingHandler):
    """Holds every message at DATA until the test lets it through: an SMTP server as slow as it likes."""

    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server, session, envelope) -> str:
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 10)
        return await super().handle_DATA(server, session, envelope)


def test_background_mailer_hands_over_without_waiting_for_the_server(smtp_server):
    """Issue 15 §1: a request that emails someone does not wait for SMTP, so its timing says nothing."""
    held = HeldHandler()
    port = smtp_server(with_handler=held)
    mailer = mail.BackgroundMailer(mail.SMTPMailer(host="127.0.0.1", port=port, sender=SENDER, starttls=False))

    mailer.send(message())

    assert not mailer.flush(timeout=0.2) and held.received == []  # handed over, not delivered yet
    held.release.set()
    assert mailer.flush(timeout=10)
    assert [rcpt for _, rcpt, _ in held.received] == [["alice@example.com"]]


def test_background_mailer_logs_a_failure_without_the_body_and_delivers_the_rest(smtp_server, handler, caplog):
    port = smtp_server()
    mailer = mail.BackgroundMailer(mail.SMTPMailer(host="127.0.0.1", port=port, sender=SENDER, starttls=False))

    with caplog.at_level(logging.ERROR, logger="app.services.mail"):
        mailer.send(message(to=UNKNOWN_RECIPIENT, subject="Refused"))
        mailer.send(message())
        assert mailer.flush(timeout=10)

    assert [rcpt for _, rcpt, _ in handler.received] == [["alice@example.com"]]
    assert "mail not sent (Refused)" in caplog.text and SECRET_BODY not in caplog.text


class TestForgotPasswordOverSMTP:
    """The forgot-password answer for an address with an account is given before the SMTP server has the
    message: the same timing class as for an unknown address (issue 15 §1, "Done when")."""

    @pytest.fixture
    def held(self) -> HeldHandler:
        return HeldHandler()

    @pytest.fixture
    def settings(self, database_url, smtp_server, held):
        port = smtp_server(with_handler=held)
        return make_settings(database_url, MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=port,
                             SMTP_STARTTLS=False, MAIL_FROM=SENDER)

    def test_known_address_is_answered_before_the_mail_is_delivered(self, api, app, user, held):
        response = api.post("/api/v1/auth/password/forgot", json={"email": user.email})

        assert response.status == 202 and held.received == []
        held.release.set()
        assert app.extensions["gatehouse.mailer"].flush(timeout=10)
        [(_, recipients, _)] = held.received
        assert recipients == [user.email]


# --- queued until the transaction commits --------------------------------------------------------


def test_send_queued_sends_each_message_once(db_session, tmp_path):
    outbox = mail.FileOutbox(tmp_path, sender=SENDER)
    mail.queue(db_session, message(to="a@example.com"))
    mail.queue(db_session, message(to="b@example.com"))

    sent = mail.send_queued(db_session, outbox)
    again = mail.send_queued(db_session, outbox)

    assert (sent, again) == (2, 0)
    assert mail.queued(db_session) == []
    assert len(read_outbox(tmp_path)) == 2


def test_send_queued_when_one_message_fails_logs_it_without_body_and_sends_the_rest(db_session, caplog,
                                                                                    smtp_server, handler):
    mailer = mail.SMTPMailer(host="127.0.0.1", port=smtp_server(), sender=SENDER, starttls=False)
    mail.queue(db_session, message(to=UNKNOWN_RECIPIENT, subject="First"))
    mail.queue(db_session, message(to="alice@example.com", subject="Second"))

    sent = mail.send_queued(db_session, mailer)

    assert sent == 1
    assert [rcpt for _, rcpt, _ in handler.received] == [["alice@example.com"]]
    assert "mail not sent (First): SMTPRecipientsRefused" in caplog.text
    assert "not-for-the-logs" not in caplog.text


def test_send_queued_when_server_is_down_logs_the_failure(db_session, caplog):
    mailer = mail.SMTPMailer(host="127.0.0.1", port=free_port(), sender=SENDER, starttls=False, timeout=2)
    mail.queue(db_session, message(subject="First"))

    sent = mail.send_queued(db_session, mailer)

    assert sent == 0
    assert "mail not sent (First): ConnectionRefusedError" in caplog.text
    assert "not-for-the-logs" not in caplog.text


@pytest.fixture
def settings(database_url, tmp_path):
    """The app's file outbox is this test's directory."""
    return make_settings(database_url, MAIL_OUTBOX_DIR=str(tmp_path / "outbox"))


def test_mail_queued_on_app_session_is_sent_when_transaction_commits(app, settings):
    with app.app_context():
        mail.queue(db.session, message())
        assert read_outbox(settings.MAIL_OUTBOX_DIR) == []
        db.session.commit()

    assert len(read_outbox(settings.MAIL_OUTBOX_DIR)) == 1


def test_mail_queued_on_app_session_is_dropped_when_transaction_rolls_back(app, settings):
    with app.app_context():
        mail.queue(db.session, message())
        db.session.rollback()
        db.session.commit()  # a later transaction of the same session sends nothing either

    assert read_outbox(settings.MAIL_OUTBOX_DIR) == []
