"""The emails users receive about their conversions: content and header safety."""

import shlex
from email import policy
from email.parser import BytesParser

import pytest

from common.settings import ConsumerSettings, MessagingSettings, MongoSettings, SmtpSettings
from notification import mail
from notification.config import NotificationConfig

FID = "65f0c0ffee0000000000f1d0"
JOB = "65f0c0ffee0000000000ab0c"
PUBLIC_URL = "https://mp3.example.org"
TO = "listener@example.com"
STANDARD_HEADERS = {"from", "to", "subject", "x-mp3converter-job", "content-type",
                    "content-transfer-encoding", "mime-version"}


def _config() -> NotificationConfig:
    return NotificationConfig(
        smtp=SmtpSettings("127.0.0.1", 1025, False, "", "", "mp3converter@localhost", 5.0),
        public_url=PUBLIC_URL, auth_url="http://127.0.0.1:1", auth_timeout=1.0,
        mongo=MongoSettings("mongodb://127.0.0.1:1", "x"),
        messaging=MessagingSettings("amqp://127.0.0.1:1/%2F", 3, 1.0, 5.0),
        consumer=ConsumerSettings(1.0, "/tmp/unused.heartbeat", 60.0), log_level="WARNING")


def _reparse(message):
    """The message as the recipient's mail program reads it."""
    return BytesParser(policy=policy.default).parsebytes(message.as_bytes())


def _curl_line(body: str) -> list[str]:
    (line,) = [ln for ln in body.splitlines() if ln.strip().startswith("curl --output")]
    return shlex.split(line)


def test_success_email_has_subject_and_a_working_curl_command():
    msg = _reparse(mail.compose(_config(), TO, JOB, "Summer Holiday.mkv", FID, None))
    assert msg["Subject"] == "Your MP3 is ready: Summer Holiday.mp3"
    assert msg["To"] == TO and msg["From"] == "mp3converter@localhost"
    assert msg["X-Mp3converter-Job"] == JOB
    body = msg.get_content()
    assert FID in body and JOB in body
    assert _curl_line(body) == ["curl", "--output", "Summer Holiday.mp3", "-H",
                                "Authorization: Bearer $JWT",
                                f"{PUBLIC_URL}/download?fid={FID}"]
    assert f"curl -X POST {PUBLIC_URL}/login -u {TO}" in body


def test_filename_with_shell_characters_is_quoted_in_the_curl_command():
    msg = _reparse(mail.compose(_config(), TO, JOB, "it's $(rm -rf ~).mp4", FID, None))
    assert _curl_line(msg.get_content())[2] == "it's $(rm -rf ~).mp3"


def test_non_ascii_filename_reads_back_intact():
    msg = _reparse(mail.compose(_config(), TO, JOB, "Café – été.mov", FID, None))
    assert msg["Subject"] == "Your MP3 is ready: Café – été.mp3"
    assert "Café – été.mov has been converted" in msg.get_content()


def test_failure_email_names_the_reason_and_the_job():
    msg = _reparse(mail.compose(_config(), TO, JOB, "clip.mp4", None,
                                "the video has no audio track"))
    assert msg["Subject"] == "Could not convert clip.mp4: the video has no audio track"
    body = msg.get_content()
    assert "the video has no audio track" in body and JOB in body
    assert "curl" not in body


@pytest.mark.parametrize("filename, error", [
    ("evil.mkv\r\nBcc: victim@example.com", None),
    ("evil.mkv\nBcc: victim@example.com\n\nfake body", None),
    ("evil.mkv\rX-Injected: yes", "bad\r\nBcc: victim@example.com"),
    ("clip.mp4", "ffmpeg said\r\nX-Injected: yes"),
])
def test_cr_lf_in_filename_or_error_cannot_add_headers(filename, error):
    fid = None if error else FID
    msg = _reparse(mail.compose(_config(), TO, JOB, filename, fid, error))
    assert {key.lower() for key in msg.keys()} == STANDARD_HEADERS
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
