"""common.mail.send against real SMTP servers: delivery, refusals, an unreachable server."""

import smtplib
import uuid
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from common import mail
from common.errors import PermanentError
from common.settings import SmtpSettings
from tools.processes import free_port


def _settings(host: str, port: int) -> SmtpSettings:
    return SmtpSettings(host=host, port=port, starttls=False, username="", password="",
                        sender="mp3converter@localhost", timeout=5.0)


def _message(to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "mp3converter@localhost", to, "hello"
    msg.set_content("a body\n")
    return msg


class Refuse:
    """aiosmtpd handler of a mail server that refuses every recipient with ``reply``."""

    def __init__(self, reply: str):
        self.reply = reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        return self.reply


@pytest.fixture
def refusing_server():
    """refusing_server(reply) -> SmtpSettings of a real SMTP server refusing every recipient."""
    controllers = []

    def start(reply: str) -> SmtpSettings:
        port = free_port()
        controller = Controller(Refuse(reply), hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return _settings("127.0.0.1", port)

    yield start
    for controller in controllers:
        controller.stop()


def test_send_delivers_to_the_smtp_server(mailsink):
    to = f"rcpt-{uuid.uuid4().hex[:10]}@example.com"
    mail.send(_settings(mailsink.host, mailsink.port), _message(to))
    (got,) = mailsink.wait_for(1, timeout=10, to=to)
    assert got["X-Envelope-To"] == to and got["Subject"] == "hello"


def test_send_to_a_closed_port_raises_oserror():
    with pytest.raises(OSError):
        mail.send(_settings("127.0.0.1", free_port()), _message("a@example.com"))


def test_a_recipient_refused_for_good_is_permanent(refusing_server):
    with pytest.raises(PermanentError, match="refused the recipient"):
        mail.send(refusing_server("550 no such user here"), _message("a@example.com"))


def test_a_temporary_refusal_is_left_to_retry(refusing_server):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        mail.send(refusing_server("451 greylisted, try again later"), _message("a@example.com"))
    assert not isinstance(caught.value, PermanentError)
