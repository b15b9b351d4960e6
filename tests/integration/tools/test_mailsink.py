"""The SMTP sink stores what it receives and tests can read it back."""

import json
import smtplib
from email.message import EmailMessage

import pytest

from tools.mailsink import read_messages

pytestmark = pytest.mark.integration


def _send(sink, to, subject, body="hello", attachment=None):
    msg = EmailMessage()
    msg["From"] = "mp3converter@localhost"
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content(body)
    if attachment:
        msg.add_attachment(
            attachment, maintype="application", subtype="octet-stream", filename="blob.bin"
        )
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.send_message(msg)


def test_message_round_trip_keeps_headers_body_and_envelope(mailsink):
    _send(
        mailsink,
        ["alice@example.com", "bob@example.com"],
        "Your MP3 is ready ✓",
        body="curl --output x.mp3 ...",
        attachment=b"\x00\x01binary",
    )

    [msg] = mailsink.wait_for(1, timeout=10, to="alice@example.com")

    assert msg["Subject"] == "Your MP3 is ready ✓"
    assert msg["X-Envelope-From"] == "mp3converter@localhost"
    assert msg["X-Envelope-To"] == "alice@example.com, bob@example.com"
    assert msg.get_body(("plain",)).get_content().strip() == "curl --output x.mp3 ..."
    [part] = list(msg.iter_attachments())
    assert part.get_content() == b"\x00\x01binary"


def test_each_message_is_one_complete_eml_file_and_one_json_log_line(mailsink):
    to = "carol@example.com"
    for n in range(3):
        _send(mailsink, [to], f"message {n}")

    found = mailsink.wait_for(3, timeout=10, to=to)

    assert [m["Subject"] for m in found] == ["message 0", "message 1", "message 2"]
    assert not [p for p in mailsink.dir.iterdir() if p.name.startswith(".")], "temporary files"
    records = [
        json.loads(line)
        for line in mailsink.process.log_text().splitlines()
        if line.startswith("{")
    ]
    mine = [r for r in records if r.get("event") == "mail.received" and r["to"] == [to]]
    assert [r["subject"] for r in mine] == ["message 0", "message 1", "message 2"]
    assert all(r["from"] == "mp3converter@localhost" for r in mine)


def test_wait_for_fails_with_what_arrived(mailsink):
    with pytest.raises(AssertionError, match="expected 1 message"):
        mailsink.wait_for(1, timeout=0.5, to="nobody-at-all@example.com")


def test_read_messages_of_missing_directory_is_empty(tmp_path):
    assert read_messages(tmp_path / "absent") == []
