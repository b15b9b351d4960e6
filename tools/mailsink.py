"""Local SMTP sink: stores every received message as an .eml file and logs it as JSON."""

from __future__ import annotations

import argparse
import email
import itertools
import json
import os
import signal
import sys
import threading
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

_counter = itertools.count()


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
