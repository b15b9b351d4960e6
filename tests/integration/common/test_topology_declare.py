"""Queue topology on a real RabbitMQ node: idempotent declaration, delay and dead-letter routing."""

import json
import time
from urllib.parse import unquote, urlparse

import pika
import pytest

from common import topology

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
    expected = {"video", "mp3", "video.dlq", "mp3.dlq", "video.retry.1", "video.retry.2",
                "mp3.retry.1", "mp3.retry.2"}
    assert set(queues) == expected
    assert all(q["durable"] for q in queues.values())
    for work in ("video", "mp3"):
        assert queues[work]["type"] == "quorum"
        args = _arguments(queues[work])
        assert args["x-delivery-limit"] == topology.BROKER_DELIVERY_LIMIT
        assert args["x-dead-letter-routing-key"] == f"{work}.dlq"
    assert _arguments(queues["video.retry.1"])["x-dead-letter-routing-key"] == "video"


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
        channel.basic_publish("", "mp3.retry.1", b"later",
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
