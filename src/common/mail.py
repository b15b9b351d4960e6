"""Deliver an email over SMTP, as every service that writes to users does."""

import smtplib
from email.message import EmailMessage

from common.errors import PermanentError
from common.settings import SmtpSettings


def send(settings: SmtpSettings, message: EmailMessage) -> None:
    """Deliver ``message``; PermanentError when the server refuses the recipient for good.

    Anything else (server down, timeout, a temporary refusal) raises OSError or
    smtplib.SMTPException: the caller retries later.
    """
    with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
        if settings.starttls:
            smtp.starttls()
        if settings.username:
            smtp.login(settings.username, settings.password)
        try:
            smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _text in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise PermanentError(f"mail server refused the recipient: {exc}") from None
            raise  # 4xx: a temporary refusal (greylisting, full mailbox), worth a retry
