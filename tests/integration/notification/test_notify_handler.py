"""NotifyHandler against real nx-27017, the SMTP sink and a real auth: one email per job,
and only to an address its owner confirmed."""

import uuid

import pytest
import requests
from bson import ObjectId

from common import messages
from common.broker import Publisher
from common.consumer import Delivery
from common.errors import PermanentError, RetryableError
from common.jobs import Jobs
from common.settings import ConsumerSettings, MessagingSettings, MongoSettings, SmtpSettings
from common.store import Store
from notification.config import NotificationConfig
from notification.worker import SKIPPED_UNVERIFIED, NotifyHandler
from tests.conftest import _start_services
from tools.processes import free_port

pytestmark = pytest.mark.integration

PASSWORD = "notify me please"
MP3_FID = "65f0c0ffee0000000000abcd"


@pytest.fixture(scope="module")
def auth(service_env, mailsink, service_dirs):
    """auth alone, as a real gunicorn process on the session's database and mail sink."""
    env = dict(service_env, AUTH_URL=f"http://127.0.0.1:{free_port()}")
    running = _start_services(env, service_dirs.new("auth"), {"mailsink": mailsink.process},
                              services=("auth",), mailsink=mailsink)
    yield running
    running.services.stop()


def _handler(auth, mongodb_uri, rabbitmq_url, mailsink, tmp_path, auth_url=None):
    """A handler on a database of its own; its Store is ``handler.test_store``."""
    config = NotificationConfig(
        smtp=SmtpSettings(mailsink.host, mailsink.port, False, "", "", "mp3converter@localhost",
                          5.0),
        public_url="http://gw.example:8080", auth_url=auth_url or auth.auth_url, auth_timeout=5.0,
        mongo=MongoSettings(mongodb_uri, f"mp3test_{uuid.uuid4().hex[:8]}"),
        messaging=MessagingSettings(rabbitmq_url, 3, 1.0, 5.0),
        consumer=ConsumerSettings(1.0, str(tmp_path / "hb"), 60.0), log_level="WARNING")
    store = Store(config.mongo)
    handler = NotifyHandler(config, store)
    handler.test_store = store
    return handler


def _close(handler) -> None:
    handler.test_store.client.drop_database(handler.config.mongo.db)
    handler.test_store.close()


@pytest.fixture
def handler(auth, mongodb_uri, rabbitmq_url, mailsink, tmp_path):
    made = _handler(auth, mongodb_uri, rabbitmq_url, mailsink, tmp_path)
    yield made
    _close(made)


@pytest.fixture
def publisher(vhost):
    """Publishes the jobs' `video` and `mp3` messages into a vhost of this module."""
    publisher = Publisher(vhost, 3)
    yield publisher
    publisher.close()


def _register(auth, mailsink, verified: bool) -> tuple[str, str]:
    """A new account registered on auth, its link followed when ``verified``: (its address,
    its account id, which jobs and messages carry as their owner)."""
    email = f"n-{uuid.uuid4().hex[:10]}@example.com"
    resp = requests.post(f"{auth.auth_url}/register", json={"email": email, "password": PASSWORD},
                         timeout=10)
    assert resp.status_code == 201, resp.text
    if verified:
        _confirm(auth, mailsink, email)
    account = requests.get(f"{auth.auth_url}/users/{email}", timeout=10).json()
    return email, account["account_id"]


def _confirm(auth, mailsink, owner: str) -> None:
    link = mailsink.verification_link(owner, consume=True)
    token = link.split("token=", 1)[1]
    resp = requests.post(f"{auth.auth_url}/verify", json={"token": token}, timeout=10)
    assert resp.status_code == 200, resp.text


def _delivery(msg) -> Delivery:
    return Delivery(body=messages.encode(msg), headers={}, redelivered=False, attempt=1,
                    publisher=Publisher("amqp://guest:guest@127.0.0.1:1/%2F", 3))


def _job(handler, publisher, owner: str, filename: str, error: str | None = None) -> str:
    """A job converted (to MP3 ``MP3_FID``) or failed with ``error``, as converters leave it."""
    jobs = Jobs(handler.test_store)
    job_id = ObjectId()
    jobs.create(job_id, owner, ObjectId(), filename, "video/mp4", 10, publisher)
    job = jobs.claim(job_id, "token", 1)
    if error is None:
        assert jobs.finish(job, "token", ObjectId(MP3_FID), 1000, 3.0, publisher)
    else:
        assert jobs.fail(job_id, error, publisher)
    return str(job_id)


def test_sends_once_to_a_verified_owner_and_records_it(handler, publisher, auth, mailsink):
    address, owner = _register(auth, mailsink, verified=True)
    job_id = _job(handler, publisher, owner, "Talk.webm")
    msg = messages.Mp3Message(job_id, "v", owner, mp3_fid=MP3_FID)
    handler.handle(_delivery(msg))
    (email,) = mailsink.wait_for(1, to=address)
    assert email["Subject"] == "Your MP3 is ready: Talk.mp3" and email["To"] == address
    body = email.get_content()
    assert f"http://gw.example:8080/download?fid={MP3_FID}" in body
    assert "can be downloaded until" in body
    job = Jobs(handler.test_store).get(job_id)
    assert job["notified_at"] and job["notification"] == "sent"
    handler.handle(_delivery(msg))
    assert len(mailsink.messages(to=address)) == 1


def test_a_message_of_the_earlier_release_owned_by_an_address_still_emails(
        handler, publisher, auth, mailsink):
    address, _ = _register(auth, mailsink, verified=True)
    job_id = _job(handler, publisher, address, "Talk.webm")
    handler.handle(_delivery(messages.Mp3Message(job_id, "v", address, mp3_fid=MP3_FID)))
    (email,) = mailsink.wait_for(1, to=address)
    assert email["Subject"] == "Your MP3 is ready: Talk.mp3"


def test_an_unverified_owner_gets_nothing_until_confirmed(handler, publisher, auth, mailsink):
    address, owner = _register(auth, mailsink, verified=False)
    job_id = _job(handler, publisher, owner, "Talk.webm")
    msg = messages.Mp3Message(job_id, "v", owner, mp3_fid=MP3_FID)
    handler.handle(_delivery(msg))
    job = Jobs(handler.test_store).get(job_id)
    assert job["notification"] == SKIPPED_UNVERIFIED and job.get("notified_at") is None
    assert [m["Subject"] for m in mailsink.messages(to=address)] == [
        "Confirm your email address for mp3converter"]
    # The same message again once the owner confirmed (a redelivery): now it goes out.
    _confirm(auth, mailsink, address)
    handler.handle(_delivery(msg))
    (email,) = mailsink.wait_for(1, to=address)
    assert email["Subject"] == "Your MP3 is ready: Talk.mp3"


def test_an_address_auth_does_not_know_gets_nothing(handler, publisher, mailsink):
    stranger = f"stranger-{uuid.uuid4().hex[:10]}@example.com"
    job_id = _job(handler, publisher, stranger, "clip.mp4", error="the upload was interrupted")
    msg = messages.Mp3Message(job_id, "v", stranger, error="the upload was interrupted")
    handler.handle(_delivery(msg))
    assert mailsink.messages(to=stranger) == []
    assert Jobs(handler.test_store).get(job_id)["notification"] == SKIPPED_UNVERIFIED


def test_failure_email_goes_to_a_verified_owner(handler, publisher, auth, mailsink):
    address, owner = _register(auth, mailsink, verified=True)
    job_id = _job(handler, publisher, owner, "clip.mp4", error="the upload was interrupted")
    msg = messages.Mp3Message(job_id, "v", owner, error="the upload was interrupted")
    handler.handle(_delivery(msg))
    (email,) = mailsink.wait_for(1, to=address)
    assert email["Subject"] == "Could not convert clip.mp4: the upload was interrupted"


def test_no_email_for_a_job_that_was_deleted_or_never_recorded(handler, publisher, auth,
                                                               mailsink):
    address, owner = _register(auth, mailsink, verified=True)
    job_id = _job(handler, publisher, owner, "Talk.webm")
    assert Jobs(handler.test_store).delete(job_id, owner)
    handler.handle(_delivery(messages.Mp3Message(job_id, "v", owner, mp3_fid=MP3_FID)))
    handler.handle(_delivery(messages.Mp3Message(str(ObjectId()), "v", owner,
                                                 error="the upload was interrupted")))
    assert mailsink.messages(to=address) == []


def test_auth_unreachable_is_retryable_and_sends_nothing(auth, publisher, mongodb_uri,
                                                        rabbitmq_url, mailsink, tmp_path):
    address, owner = _register(auth, mailsink, verified=True)
    handler = _handler(auth, mongodb_uri, rabbitmq_url, mailsink, tmp_path,
                       auth_url=f"http://127.0.0.1:{free_port()}")
    try:
        job_id = _job(handler, publisher, owner, "clip.mp4")
        msg = messages.Mp3Message(job_id, "v", owner, mp3_fid=MP3_FID)
        with pytest.raises(RetryableError, match="auth unavailable"):
            handler.handle(_delivery(msg))
        assert mailsink.messages(to=address) == []
        assert Jobs(handler.test_store).get(job_id).get("notification") is None
    finally:
        _close(handler)


def test_malformed_message_is_permanent(handler):
    bad = Delivery(body=b'{"job_id": "x"}', headers={}, redelivered=False, attempt=1,
                   publisher=Publisher("amqp://127.0.0.1:1/%2F", 3))
    with pytest.raises(PermanentError, match="missing"):
        handler.handle(bad)
