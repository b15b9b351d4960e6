"""NotifyHandler against real nx-27017 and the SMTP sink: one email per job."""

import uuid

import pytest
from bson import ObjectId

from common import messages
from common.broker import Publisher
from common.consumer import Delivery
from common.errors import PermanentError
from common.settings import ConsumerSettings, MessagingSettings, MongoSettings
from common.store import Store
from notification.config import NotificationConfig
from notification.worker import NotifyHandler


@pytest.fixture
def handler(mongodb_uri, rabbitmq_url, mailsink, tmp_path):
    config = NotificationConfig(
        smtp_host=mailsink.host, smtp_port=mailsink.port, smtp_starttls=False, smtp_username="",
        smtp_password="", smtp_from="mp3converter@localhost", smtp_timeout=5.0,
        public_url="http://gw.example:8080",
        mongo=MongoSettings(mongodb_uri, f"mp3test_{uuid.uuid4().hex[:8]}"),
        messaging=MessagingSettings(rabbitmq_url, 3, 1.0, 5.0),
        consumer=ConsumerSettings(1.0, str(tmp_path / "hb"), 60.0), log_level="WARNING")
    store = Store(config.mongo)
    yield NotifyHandler(config, store)
    store.client.drop_database(config.mongo.db)
    store.close()


def _delivery(msg) -> Delivery:
    return Delivery(body=messages.encode(msg), headers={}, redelivered=False, attempt=1,
                    publisher=Publisher("amqp://guest:guest@127.0.0.1:1/%2F", 3))


def _job(store, owner: str, filename: str) -> str:
    job_id, fid = ObjectId(), ObjectId()
    store.create_job(job_id, owner, fid, filename, "video/mp4", 10)
    return str(job_id)


def test_sends_once_and_records_it(handler, mailsink):
    owner = f"n-{uuid.uuid4().hex[:10]}@example.com"
    job_id = _job(handler.store, owner, "Talk.webm")
    msg = messages.Mp3Message(job_id, "v", owner, mp3_fid="65f0c0ffee0000000000abcd")
    handler.handle(_delivery(msg))
    (email,) = mailsink.wait_for(1, to=owner)
    assert email["Subject"] == "Your MP3 is ready: Talk.mp3"
    assert "http://gw.example:8080/download?fid=65f0c0ffee0000000000abcd" in email.get_content()
    assert handler.store.get_job(job_id)["notified_at"]
    handler.handle(_delivery(msg))
    assert len(mailsink.messages(to=owner)) == 1


def test_failure_email_for_an_unknown_job_still_goes_out(handler, mailsink):
    owner = f"n-{uuid.uuid4().hex[:10]}@example.com"
    msg = messages.Mp3Message(str(ObjectId()), "v", owner, error="the upload was interrupted")
    handler.handle(_delivery(msg))
    (email,) = mailsink.wait_for(1, to=owner)
    assert email["Subject"] == "Could not convert your video: the upload was interrupted"


def test_malformed_message_is_permanent(handler):
    bad = Delivery(body=b'{"job_id": "x"}', headers={}, redelivered=False, attempt=1,
                   publisher=Publisher("amqp://127.0.0.1:1/%2F", 3))
    with pytest.raises(PermanentError, match="missing"):
        handler.handle(bad)
