"""Compose the emails users receive about their conversions (common.mail sends them)."""

import datetime as dt
import shlex
from email.message import EmailMessage
from pathlib import PurePath


def _printable(text: str) -> str:
    """``text`` without control characters (no header injection through filenames)."""
    return "".join(ch if ch.isprintable() else " " for ch in text).strip()


def compose(config, to: str, job_id: str, filename: str, mp3_fid: str | None,
            error: str | None, expires_at: float | None = None) -> EmailMessage:
    """The success or failure email for one job (``expires_at``: when the MP3 is deleted)."""
    name = _printable(filename or "your video")
    msg = EmailMessage()
    msg["From"] = config.smtp.sender
    msg["To"] = to
    if mp3_fid:
        mp3_name = PurePath(name).stem + ".mp3"
        url = f"{config.public_url}/download?fid={mp3_fid}"
        msg["Subject"] = f"Your MP3 is ready: {mp3_name}"
        _set_body(msg,
            f"{name} has been converted.\n\n"
            f"MP3 id: {mp3_fid}\n"
            f"Job id: {job_id}\n\n"
            "Download it with:\n\n"
            f"  curl --output {shlex.quote(mp3_name)} -H \"Authorization: Bearer $JWT\" "
            f"\"{url}\"\n\n"
            f"where $JWT is the token from: curl -X POST {config.public_url}/login -u {to}\n"
            f"{_until(expires_at)}")
    else:
        reason = _printable(error or "unknown error")
        msg["Subject"] = f"Could not convert {name}: {reason}"[:200]
        _set_body(msg, f"Could not convert {name}: {reason}\n\nJob id: {job_id}\n")
    msg["X-Mp3converter-Job"] = job_id
    return msg


def compose_disabled(config, to: str, url: str, reason: str) -> EmailMessage:
    """The email telling an owner that one of their webhook endpoints was disabled."""
    msg = EmailMessage()
    msg["From"] = config.smtp.sender
    msg["To"] = to
    msg["Subject"] = "Your webhook endpoint was disabled"
    shown = _printable(url)
    _set_body(msg,
        f"Your webhook endpoint\n\n  {shown}\n\nwas disabled: {_printable(reason)}.\n\n"
        "No more events are sent to it. See the attempts with GET /webhooks/<id>/deliveries;\n"
        "once the endpoint answers again, delete it and register it anew "
        f"({config.public_url}/webhooks).\n")
    return msg


def _until(expires_at: float | None) -> str:
    """The sentence saying until when the download works."""
    if expires_at is None:
        return ""
    moment = dt.datetime.fromtimestamp(expires_at, dt.UTC)
    return (f"\nThe MP3 can be downloaded until {moment:%A %d %B %Y, %H:%M} UTC; "
            "then it is deleted.\n")


def _set_body(msg: EmailMessage, text: str) -> None:
    """Plain text, readable as-is in the raw message when it is ASCII."""
    msg.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")

