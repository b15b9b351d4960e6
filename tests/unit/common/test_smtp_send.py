"""common.mail.send against real SMTP servers run by the test itself (aiosmtpd): delivery,
refusals, an unreachable server."""

import smtplib
import uuid
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

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


class Keep:
    """aiosmtpd handler of a mail server that accepts everything and keeps the envelopes."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server():
    """smtp_server(handler) -> SmtpSettings of an SMTP server in this process on a free port."""
    controllers = []

    def start(handler) -> SmtpSettings:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return _settings("127.0.0.1", port)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def refusing_server(smtp_server):
    """refusing_server(reply) -> SmtpSettings of an SMTP server refusing every recipient."""
    return lambda reply: smtp_server(Refuse(reply))


def test_send_delivers_to_the_smtp_server(smtp_server):
    to = f"rcpt-{uuid.uuid4().hex[:10]}@example.com"
    server = Keep()
    mail.send(smtp_server(server), _message(to))
    (got,) = server.envelopes  # send() returns once the server accepted the message
    assert got.rcpt_tos == [to] and got.mail_from == "mp3converter@localhost"
    assert BytesParser(policy=policy.default).parsebytes(got.original_content)["Subject"] == "hello"


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
