"""Queue topology on a real RabbitMQ node: idempotent declaration, delay and dead-letter routing."""

import json
import threading
import time
from urllib.parse import unquote, urlparse

import pika
import pytest

from common import topology

# Every queue the services declare with MAX_DELIVERY_ATTEMPTS=3 (also what the cluster and the
# queue migration tests expect to find).
DECLARED = frozenset({
    "video", "video.long", "mp3", "video.dlq", "video.long.dlq", "mp3.dlq",
    "video.delay.1", "video.delay.2", "video.long.delay.1", "video.long.delay.2",
    "mp3.delay.1", "mp3.delay.2", "webhooks", "webhooks.dlq", "webhooks.delay.1",
    "webhooks.delay.2", "webhooks.deliver", "webhooks.deliver.dlq",
    # a delivery's own retry schedule (WEBHOOK_RETRY_DELAYS): up to 12 delays
    *(f"webhooks.deliver.delay.{n}" for n in range(1, 13))})

pytestmark = pytest.mark.integration


def _queues(url: str, node) -> dict[str, dict]:
    vhost = unquote(urlparse(url).path.lstrip("/"))
    out = node.ctl("list_queues", "-p", vhost, "name", "type", "durable", "arguments",
                   "--formatter", "json")
    return {q["name"]: q for q in json.loads(out)}


def _arguments(queue: dict) -> dict:
    args = queue["arguments"]
    if isinstance(args, list):  # [[key, type, value], ...]
        args = {item[0]: item[-1] for item in args}
    return args


def test_declare_twice_on_a_fresh_vhost_keeps_queues_and_messages(fresh_vhost,
                                                                   rabbitmq_node):
    conn = pika.BlockingConnection(pika.URLParameters(fresh_vhost))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        topology.declare(channel, 3)
        channel.basic_publish("", "video", b"kept")
        topology.declare(channel, 3)
        assert channel.queue_declare("video", passive=True).method.message_count == 1
    finally:
        conn.close()
    queues = _queues(fresh_vhost, rabbitmq_node)
    assert set(queues) == DECLARED
    assert all(q["durable"] for q in queues.values())
    assert {q["type"] for q in queues.values()} == {"quorum"}  # none lives on one node only
    for work in ("video", "mp3", "webhooks", "webhooks.deliver"):
        args = _arguments(queues[work])
        assert args["x-delivery-limit"] == topology.BROKER_DELIVERY_LIMIT
        assert args["x-dead-letter-routing-key"] == f"{work}.dlq"
        delay = _arguments(queues[f"{work}.delay.1"])
        assert delay["x-dead-letter-routing-key"] == work
        # an expired message stays in its delay queue until the work queue confirmed it
        assert delay["x-dead-letter-strategy"] == "at-least-once"
        assert delay["x-overflow"] == "reject-publish"


def _get(channel, queue: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            return props, body
        time.sleep(0.1)
    return None


def test_retry_queue_delivers_back_to_the_work_queue_after_the_ttl(vhost):
    conn = pika.BlockingConnection(pika.URLParameters(vhost))
    try:
        channel = conn.channel()
        topology.declare(channel, 3)
        channel.basic_publish("", topology.retry_queue("mp3", 1), b"later",
                              pika.BasicProperties(expiration="200"))
        got = _get(channel, "mp3")
        assert got is not None and got[1] == b"later"
    finally:
        conn.close()


def test_a_message_requeued_past_the_delivery_limit_is_dead_lettered(vhost):
    conn = pika.BlockingConnection(pika.URLParameters(vhost))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        topology.declare(channel, 3)
        channel.basic_publish("", "video", b"poison")
        for _ in range(topology.BROKER_DELIVERY_LIMIT + 3):
            method, _props, _body = channel.basic_get("video")
            if method is None:
                break
            channel.basic_nack(method.delivery_tag, requeue=True)
        got = _get(channel, "video.dlq")
        assert got is not None and got[1] == b"poison"
    finally:
        conn.close()


def test_a_classic_dead_letter_queue_of_an_earlier_release_is_kept_and_used(fresh_vhost,
                                                                             rabbitmq_node,
                                                                             caplog,
                                                                             monkeypatch):
    monkeypatch.setattr(topology, "_legacy_reported", set())  # warned once per process
    conn = pika.BlockingConnection(pika.URLParameters(fresh_vhost))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.queue_declare("video.dlq", durable=True)  # as the previous release declared it
        channel.basic_publish("", "video.dlq", b"old dead letter")
        with caplog.at_level("WARNING", logger="common.topology"):
            topology.declare(channel, 3)  # refused and closed nothing: the services start
            topology.declare(channel, 3)
        channel.basic_publish("", "video.dlq", b"new dead letter")
        assert channel.queue_declare("video.dlq", passive=True).method.message_count == 2
    finally:
        conn.close()
    queues = _queues(fresh_vhost, rabbitmq_node)
    assert queues["video.dlq"]["type"] == "classic"  # until `python -m ops migrate`
    assert queues["mp3.dlq"]["type"] == "quorum"
    warnings = [r for r in caplog.records if "ops migrate" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].queue == "video.dlq"


def test_services_starting_together_all_declare_the_topology(fresh_vhost):
    """Every consumer loop of every service declares the whole topology as it starts, and a
    stack starts them at once. RabbitMQ refuses a declaration that lands while another client
    is still creating the same quorum queue ("home node ... is down or inaccessible", 404):
    each declaration must still succeed, or the service exits before it is ready (the race
    itself: tests/unit/common/test_topology_race.py)."""
    starting = 16
    barrier = threading.Barrier(starting)
    errors: list[BaseException] = []

    def start() -> None:
        conn = pika.BlockingConnection(pika.URLParameters(fresh_vhost))
        try:
            channel = conn.channel()
            barrier.wait()
            topology.declare(channel, 3)
            assert channel.queue_declare("video", passive=True).method.message_count == 0
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=start) for _ in range(starting)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
