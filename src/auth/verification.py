"""The email that asks a new user to confirm their address, with its signed link."""

import urllib.parse
from email.message import EmailMessage

from auth import tokens
from common import mail


def link(config, account_id: str, email: str) -> str:
    """The gateway URL that confirms ``email`` for the account until the token expires."""
    token = tokens.issue_verify(config.jwt_secret, account_id, email, config.verify_ttl_seconds)
    return f"{config.public_url}/verify?{urllib.parse.urlencode({'token': token})}"


def compose(config, account_id: str, email: str) -> EmailMessage:
    """The verification email of the account ``account_id``, to ``email``."""
    hours = config.verify_ttl_seconds / 3600
    lifetime = f"{hours:g} hours" if hours >= 1 else f"{config.verify_ttl_seconds} seconds"
    msg = EmailMessage()
    msg["From"] = config.smtp.sender
    msg["To"] = email
    msg["Subject"] = "Confirm your email address for mp3converter"
    text = ("Someone, hopefully you, created an mp3converter account with this address.\n\n"
            "Open this link to confirm it and receive an email when each conversion finishes:"
            f"\n\n  {link(config, account_id, email)}\n\n"
            f"The link works for {lifetime}. If you did not create the account, ignore this\n"
            "email: you will not hear from us again.\n")
    msg.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
    return msg


def send(config, account_id: str, email: str) -> None:
    """Send the verification email now; raises what common.mail.send raises."""
    mail.send(config.smtp, compose(config, account_id, email))
