"""Local SMTP sink: stores every received message as an .eml file and logs it as JSON."""

from __future__ import annotations

import argparse
import email
import itertools
import json
import os
import re
import signal
import sys
import threading
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

_counter = itertools.count()
VERIFY_SUBJECT = "Confirm your email address"
VERIFY_LINK = re.compile(r"https?://\S+/verify\?token=[\w.-]+")


class StoreHandler:
    """aiosmtpd handler that writes each message atomically into a directory."""

    def __init__(self, directory: Path, log=sys.stdout):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = log

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook name)
        """Store the message and answer 250."""
        path = self.store(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        headers = email.message_from_bytes(envelope.content, policy=policy.default)
        record = {
            "event": "mail.received",
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(headers.get("Subject", "")),
            "file": path.name,
        }
        print(json.dumps(record), file=self.log, flush=True)
        return "250 Message accepted for delivery"

    def store(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> Path:
        """Write the message with its envelope as headers: a temporary file, then a rename."""
        envelope = f"X-Envelope-From: {mail_from}\r\nX-Envelope-To: {', '.join(rcpt_tos)}\r\n"
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_counter):06d}.eml"
        final = self.directory / name
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(envelope.encode())
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final


def message_paths(directory: str | os.PathLike) -> list[Path]:
    """Stored .eml files, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(
        p for p in directory.iterdir() if p.suffix == ".eml" and not p.name.startswith(".")
    )


def verification_link(directory: str | os.PathLike, to: str, timeout: float = 30.0,
                      consume: bool = False) -> str:
    """The link in the newest confirmation email to ``to`` stored in ``directory``, waiting up
    to ``timeout`` seconds for it; ``consume`` deletes that email, as a person who read it
    would, so that counting a user's job emails sees only those."""
    deadline = time.monotonic() + timeout
    while True:
        for path in reversed(message_paths(directory)):
            with open(path, "rb") as fh:
                message = BytesParser(policy=policy.default).parse(fh)
            recipient = str(message["X-Envelope-To"]).lower()
            if to.lower() in recipient and str(message["Subject"]).startswith(VERIFY_SUBJECT):
                link = VERIFY_LINK.search(message.get_body(("plain",)).get_content())
                if link is None:
                    raise AssertionError(f"no confirmation link in {path}")
                if consume:
                    path.unlink()
                return link.group(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"no confirmation email to {to} within {timeout}s")
        time.sleep(0.2)


def read_messages(directory: str | os.PathLike) -> list[EmailMessage]:
    """Parse every stored message, oldest first."""
    parser = BytesParser(policy=policy.default)
    messages = []
    for path in message_paths(directory):
        with open(path, "rb") as fh:
            messages.append(parser.parse(fh))
    return messages


def serve(host: str, port: int, directory: Path) -> None:
    """Run the sink until SIGINT or SIGTERM."""
    from aiosmtpd.controller import Controller

    controller = Controller(StoreHandler(directory), hostname=host, port=port)
    controller.start()
    started = {"event": "mailsink.started", "host": host, "port": port, "dir": str(directory)}
    print(json.dumps(started), flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    while not stopped.wait(0.5):
        pass
    controller.stop()
    print(json.dumps({"event": "mailsink.stopped"}), flush=True)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.mailsink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", default="var/mail", type=Path)
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.dir)


if __name__ == "__main__":
    main()
