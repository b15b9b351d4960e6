"""notification's DeliveryHandler on the real nx-27017, a real receiver and the SMTP sink: a
success is recorded and never sent again, a failure is scheduled on the delay queue of its
attempt with that attempt's delay, and the endpoint disabled by its failures is told to its owner
once, even when the mail server was down at that moment. (The owner's address comes from a
stand-in for auth here; the end-to-end tests ask the real one.)"""

import dataclasses
import uuid

import pytest
from prometheus_client import REGISTRY
from standardwebhooks.webhooks import Webhook

from common import egress, messages, metrics
from common.consumer import Delivery
from common.settings import (
    ConsumerSettings,
    MessagingSettings,
    MongoSettings,
    SmtpSettings,
    WebhookSettings,
)
from common.store import Store
from common.webhooks import SENT_KEPT_SECONDS, Webhooks
from notification import webhooks as sender
from notification.config import NotificationConfig
from tests.e2e.receiver import Receiver

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self):
        self.published = []

    def publish(self, queue, body, headers=None, expiration_ms=None):
        self.published.append((queue, headers, expiration_ms))


@pytest.fixture
def store(mongodb_uri):
    settings = MongoSettings(mongodb_uri, f"mp3test_{uuid.uuid4().hex[:8]}")
    made = Store(settings)
    yield made
    made.client.drop_database(settings.db)
    made.close()


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


def _config(mailsink, smtp_port=None) -> NotificationConfig:
    return NotificationConfig(
        smtp=SmtpSettings(mailsink.host, smtp_port or mailsink.port, False, "", "",
                          "mp3converter@localhost", 2.0),
        public_url="https://mp3.example", auth_url="http://127.0.0.1:9", auth_timeout=1.0,
        mongo=MongoSettings("mongodb://unused", "unused"),
        messaging=MessagingSettings("amqp://unused", 3, 1.0, 5.0),
        consumer=ConsumerSettings(1.0, "/tmp/unused-hb", 60.0), log_level="WARNING",
        webhooks=WebhookSettings(allowed_networks=egress.parse_networks("127.0.0.1/32"),
                                 retry_delays=(3.0, 7.0, 11.0), disable_after=2))


def _handle(handler, message, failed_before: int = 0) -> Recorder:
    recorder = Recorder()
    headers = {sender.ATTEMPT_HEADER: failed_before} if failed_before else {}
    handler.handle(Delivery(body=messages.encode(message), headers=headers, redelivered=False,
                            attempt=1, publisher=recorder))
    return recorder


def _counts() -> dict:
    """This process's webhook metrics (the handlers run in it)."""
    def value(name, **labels):
        return REGISTRY.get_sample_value(f"mp3converter_{name}",
                                         {"service": metrics.service(), **labels}) or 0.0
    return {outcome: value("webhook_attempts_total", outcome=outcome, event="job.done")
            for outcome in ("delivered", "failed")} | {
        "disabled": value("webhook_endpoints_disabled_total"),
        "timed": value("webhook_attempt_duration_seconds_count")}


def _message(endpoint, webhook_id=None):
    return messages.WebhookDelivery(
        webhook_id=webhook_id or f"msg_{uuid.uuid4().hex}", endpoint_id=str(endpoint["_id"]),
        owner=endpoint["owner"], type="job.done", payload='{"type": "job.done", "data": {}}')


def test_a_success_is_sent_once(store, receiver, mailsink):
    endpoint = Webhooks(store).create("owner-1", receiver.url("/ok"), ["job.done"])
    handler = sender.DeliveryHandler(_config(mailsink), store)
    message = _message(endpoint)
    before = _counts()
    assert _handle(handler, message).published == []
    assert _handle(handler, message).published == []  # redelivered: already sent
    assert _counts()["delivered"] - before["delivered"] == 1  # one attempt, counted once
    [got] = receiver.received
    assert Webhook(endpoint["secret"]).verify(got.body, got.headers)["type"] == "job.done"
    [attempt] = Webhooks(store).recent(endpoint["_id"])
    assert (attempt["ok"], attempt["status"], attempt["attempt"]) == (True, 200, 1)


def test_successes_are_remembered_for_a_week_then_forgotten_by_the_sweep(store, receiver,
                                                                        mailsink):
    hooks = Webhooks(store)
    endpoint = hooks.create("owner-2", receiver.url("/ok"), ["job.done"])
    handler = sender.DeliveryHandler(_config(mailsink), store)
    old, recent = _message(endpoint), _message(endpoint)
    _handle(handler, old), _handle(handler, recent)
    store.db["webhook_sent"].update_one({"_id": old.webhook_id},
                                        {"$inc": {"at": -SENT_KEPT_SECONDS - 60}})
    assert hooks.forget_sent() == 1
    assert not hooks.was_sent(old.webhook_id) and hooks.was_sent(recent.webhook_id)
    assert len(receiver.received) == 2


def test_failures_are_retried_then_disable_the_endpoint_and_the_owner_is_told_once(
        store, receiver, mailsink, monkeypatch):
    email = f"hooks-{uuid.uuid4().hex[:8]}@example.com"
    monkeypatch.setattr(sender.recipients, "confirmed_address", lambda _config, _owner: email)
    receiver.behaviour["/down"] = lambda _got: 503
    endpoint = Webhooks(store).create("owner-2", receiver.url("/down"), ["job.done"])
    message = _message(endpoint)
    before = _counts()

    first = _handle(sender.DeliveryHandler(_config(mailsink), store), message)
    assert first.published == [("webhooks.deliver.delay.1", {sender.ATTEMPT_HEADER: 1}, 3000)]

    # the second failure disables it, while the mail server is down: the email fails
    down = sender.DeliveryHandler(_config(mailsink, smtp_port=9), store)
    with pytest.raises(OSError):
        _handle(down, message, failed_before=1)
    doc = Webhooks(store).get(endpoint["_id"])
    assert doc["disabled_at"] and doc["disabled_reason"] == "2 deliveries in a row failed"
    assert doc["owner_told_at"] is None
    # the message's retry (the consumer's) finds it disabled, sends nothing, tells the owner
    up = sender.DeliveryHandler(_config(mailsink), store)
    assert _handle(up, message, failed_before=1).published == []
    [told] = mailsink.wait_for(1, to=email)
    assert told["Subject"] == "Your webhook endpoint was disabled"
    assert receiver.url("/down") in told.get_body().get_content()
    assert Webhooks(store).get(endpoint["_id"])["owner_told_at"]
    _handle(up, _message(endpoint))  # later events: nothing sent, nobody told again
    assert len(receiver.at("/down")) == 2
    assert len(mailsink.messages(to=email)) == 1
    # what an operator's dashboard shows: two failed attempts, one endpoint disabled
    after = _counts()
    assert after["failed"] - before["failed"] == 2
    assert after["delivered"] == before["delivered"]
    assert after["disabled"] - before["disabled"] == 1
    assert after["timed"] - before["timed"] == 2


def test_the_last_delay_is_the_last_retry(store, receiver, mailsink):
    receiver.behaviour["/down"] = lambda _got: 500
    endpoint = Webhooks(store).create("owner-3", receiver.url("/down"), ["job.done"])
    config = _config(mailsink)
    config = dataclasses.replace(config, webhooks=dataclasses.replace(config.webhooks,
                                                                      disable_after=100))
    handler = sender.DeliveryHandler(config, store)
    message = _message(endpoint)
    delays = [_handle(handler, message, failed_before=n).published for n in range(4)]
    assert delays == [[("webhooks.deliver.delay.1", {sender.ATTEMPT_HEADER: 1}, 3000)],
                      [("webhooks.deliver.delay.2", {sender.ATTEMPT_HEADER: 2}, 7000)],
                      [("webhooks.deliver.delay.3", {sender.ATTEMPT_HEADER: 3}, 11000)],
                      []]  # given up after the last delay
    assert [a["attempt"] for a in Webhooks(store).recent(endpoint["_id"])] == [4, 3, 2, 1]
