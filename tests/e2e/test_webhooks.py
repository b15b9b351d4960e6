"""Webhooks through the whole stack: a real receiver on 127.0.0.1 (allowed by the operator's
WEBHOOK_ALLOWED_NETWORKS in these stacks only) gets each event once across a notification
crash, and an endpoint that keeps failing is retried with growing delays, then disabled and its
owner emailed. Every request is verified with the independent ``standardwebhooks`` package."""

import json
import time

import pika
import pytest
import requests
from standardwebhooks.webhooks import Webhook

from common import messages, topology
from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.receiver import Receiver

pytestmark = pytest.mark.e2e

SETTINGS = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32", "WEBHOOK_RETRY_DELAYS": "1,2,4",
            "WEBHOOK_DISABLE_AFTER_FAILURES": "4"}


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


def _auth(jwt: str) -> dict:
    return {"Authorization": f"Bearer {jwt}"}


def _register(stack, jwt: str, url: str, events=None) -> dict:
    body = {"url": url} if events is None else {"url": url, "events": events}
    resp = requests.post(f"{stack.gateway_url}/webhooks", json=body, headers=_auth(jwt),
                         timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _verified(secret: str, received) -> dict:
    """The payload, verified as a receiver would, with the standardwebhooks package."""
    return Webhook(secret).verify(received.body, received.headers)


def _queues_idle(stack, *queues: str, timeout: float = 30) -> None:
    """Wait until none of ``queues`` holds a message, ready or unacked."""
    deadline = time.monotonic() + timeout
    conn = pika.BlockingConnection(pika.URLParameters(stack.env["RABBITMQ_URL"]))
    try:
        channel = conn.channel()
        while True:
            depths = [channel.queue_declare(q, passive=True).method.message_count
                      for q in queues]
            if not any(depths):
                return
            assert time.monotonic() < deadline, f"queues still hold {depths}"
            time.sleep(0.2)
    finally:
        conn.close()


def _publish(stack, queue: str, body: bytes) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(stack.env["RABBITMQ_URL"]))
    try:
        conn.channel().basic_publish("", queue, body,
                                     pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()


def test_each_event_is_delivered_once_and_verified_across_a_notification_crash(
        stack_factory, receiver, media, mailsink):
    stack = stack_factory(**SETTINGS)
    notification = stack.processes["notification"]
    email, jwt = stack.user()
    crashed = []

    def crash_first(_received) -> int:
        """The first request kills notification before it hears the answer (kill -9)."""
        if not crashed:
            crashed.append(notification.kill())
        return 200

    receiver.behaviour["/hook"] = crash_first
    hook = _register(stack, jwt, receiver.url("/hook"))
    assert hook["secret"].startswith("whsec_") and hook["events"] == [
        "job.done", "job.failed", "job.expired"]

    status, accepted = classic_upload(stack, jwt, media("mov"))
    assert status == 202, accepted
    job = wait_for_job(stack, jwt, accepted["job_id"])
    assert job["status"] == "done"
    receiver.wait_for("/hook", 1)
    assert crashed, "notification was not killed"
    notification.start().wait_ready(30)  # the broker redelivers the unacked delivery
    first, second = receiver.wait_for("/hook", 2)
    # the same event to the same endpoint: one webhook-id, each request verified
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    for got in (first, second):
        payload = _verified(hook["secret"], got)
        assert payload["type"] == "job.done"
        assert payload["data"]["job_id"] == accepted["job_id"]
        assert payload["data"]["mp3_fid"] == job["mp3_fid"]
        assert {k: v for k, v in payload["data"].items()
                if not k.startswith("download_url")} == {**job, "updated_at":
                                                         payload["data"]["updated_at"]}
    assert first.body == second.body  # the same bytes on every attempt
    # the signed link downloads the MP3 without any Authorization header
    link = payload["data"]["download_url"]
    assert link.startswith(f"{stack.gateway_url}/download?fid={job['mp3_fid']}&token=")
    download = requests.get(link, timeout=10)
    assert download.status_code == 200 and download.headers["Content-Type"] == "audio/mpeg"

    # The delivery succeeded and was recorded: the same event redelivered (as after a crash
    # between its success and its ack, or a converter publishing its result twice) sends
    # nothing more.
    _queues_idle(stack, topology.WEBHOOKS, topology.WEBHOOK_DELIVERIES)
    notification.kill()
    event = messages.WebhookEvent(type="job.done", job_id=accepted["job_id"],
                                  owner=stack.account_id(jwt))
    _publish(stack, topology.WEBHOOKS, messages.encode(event))
    notification.start().wait_ready(30)
    _queues_idle(stack, topology.WEBHOOKS, topology.WEBHOOK_DELIVERIES)
    time.sleep(1)
    assert len(receiver.at("/hook")) == 2
    resp = requests.get(f"{stack.gateway_url}/webhooks/{hook['id']}/deliveries",
                        headers=_auth(jwt), timeout=10)
    [delivered] = resp.json()["deliveries"]  # the request cut off by the crash left no record
    assert delivered["ok"] and delivered["status"] == 200
    assert delivered["webhook_id"] == first.headers["webhook-id"]
    assert delivered["type"] == "job.done" and delivered["duration"] >= 0
    # the email went out as ever, apart from the webhooks
    assert len(mailsink.wait_for(1, to=email)) == 1


def test_a_failing_endpoint_is_retried_with_growing_delays_then_disabled_and_its_owner_told(
        stack_factory, receiver, media, mailsink):
    stack = stack_factory(**SETTINGS)
    email, jwt = stack.user()
    receiver.behaviour["/broken"] = lambda _r: 500
    broken = _register(stack, jwt, receiver.url("/broken"), events=["job.done"])
    healthy = _register(stack, jwt, receiver.url("/healthy"), events=["job.done"])

    status, accepted = classic_upload(stack, jwt, media("mov"))
    assert status == 202
    assert wait_for_job(stack, jwt, accepted["job_id"])["status"] == "done"
    # the job's email and the healthy endpoint are not held up by the broken one
    [ready] = mailsink.wait_for(1, to=email)
    assert ready["Subject"].startswith("Your MP3 is ready")
    [fine] = receiver.wait_for("/healthy", 1)
    assert _verified(healthy["secret"], fine)["type"] == "job.done"
    # a test event, on request
    sent = requests.post(f"{stack.gateway_url}/webhooks/{healthy['id']}/test",
                         headers=_auth(jwt), timeout=10)
    assert sent.status_code == 202, sent.text
    _, tested = receiver.wait_for("/healthy", 2)
    assert tested.headers["webhook-id"] == sent.json()["webhook_id"]
    assert _verified(healthy["secret"], tested)["type"] == "webhook.test"

    attempts = receiver.wait_for("/broken", 4, timeout=60)
    assert len({got.headers["webhook-id"] for got in attempts}) == 1
    assert fine.headers["webhook-id"] != attempts[0].headers["webhook-id"]
    for got in attempts:
        assert _verified(broken["secret"], got)["data"]["job_id"] == accepted["job_id"]
    gaps = [attempts[n + 1].at - attempts[n].at for n in range(len(attempts) - 1)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9 and gaps[2] >= 3.9, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps

    [told] = [m for m in mailsink.wait_for(2, to=email)
              if m["Subject"] == "Your webhook endpoint was disabled"]
    assert receiver.url("/broken") in told.get_body().get_content()
    listed = {h["id"]: h for h in requests.get(f"{stack.gateway_url}/webhooks",
                                               headers=_auth(jwt), timeout=10).json()["webhooks"]}
    assert listed[broken["id"]]["enabled"] is False
    assert listed[broken["id"]]["disabled_reason"] == "4 deliveries in a row failed"
    assert listed[healthy["id"]]["enabled"] is True
    history = requests.get(f"{stack.gateway_url}/webhooks/{broken['id']}/deliveries",
                           headers=_auth(jwt), timeout=10).json()["deliveries"]
    assert [(d["attempt"], d["status"], d["ok"]) for d in history] == [
        (4, 500, False), (3, 500, False), (2, 500, False), (1, 500, False)]
    assert all(d["error"] == "answered 500" for d in history)
    # disabled: its test event is refused, and no fifth attempt comes
    resp = requests.post(f"{stack.gateway_url}/webhooks/{broken['id']}/test",
                         headers=_auth(jwt), timeout=10)
    assert resp.status_code == 409, resp.text
    time.sleep(2)
    assert len(receiver.at("/broken")) == 4
    assert json.loads(attempts[0].body)["type"] == "job.done"
