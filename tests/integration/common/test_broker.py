"""The publisher: persistent, confirmed messages, and RetryableError when the broker is away."""

import pika
import pytest

from common import topology
from common.broker import Publisher
from common.errors import RetryableError
from tools.processes import free_port

pytestmark = pytest.mark.integration


def test_published_message_is_persistent_json_with_headers(vhost):
    publisher = Publisher(vhost, max_attempts=3)
    try:
        publisher.publish("video", b'{"job_id": "j1"}', headers={"x-attempt": 2})
    finally:
        publisher.close()
    conn = pika.BlockingConnection(pika.URLParameters(vhost))
    try:
        # publish() returned, so the broker confirmed: the message is already there.
        method, props, body = conn.channel().basic_get("video", auto_ack=True)
    finally:
        conn.close()
    assert method is not None and body == b'{"job_id": "j1"}'
    assert props.delivery_mode == 2
    assert props.content_type == "application/json"
    assert props.headers["x-attempt"] == 2


def test_publisher_declares_the_topology_itself(vhost):
    publisher = Publisher(vhost, max_attempts=3)
    try:
        publisher.publish(topology.retry_queue("mp3", 2), b"{}", expiration_ms=60000)
        publisher.ping()
    finally:
        publisher.close()


def test_publishing_to_a_missing_queue_is_refused(vhost):
    publisher = Publisher(vhost, max_attempts=3)
    try:
        with pytest.raises(RetryableError, match="refused"):
            publisher.publish("no-such-queue", b"{}")
        publisher.publish("mp3", b"{}")  # the publisher is still usable
    finally:
        publisher.close()


def test_closed_port_raises_retryable_error():
    publisher = Publisher(f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", max_attempts=3)
    with pytest.raises(RetryableError, match="unreachable"):
        publisher.publish("video", b"{}")
    with pytest.raises(RetryableError, match="unreachable"):
        publisher.ping()
    publisher.close()


def test_publisher_reconnects_after_its_connection_is_closed(vhost):
    publisher = Publisher(vhost, max_attempts=3)
    try:
        publisher.publish("video", b"1")
        publisher._connection.close()  # as when the broker drops an idle connection
        publisher.publish("video", b"2")
    finally:
        publisher.close()
    conn = pika.BlockingConnection(pika.URLParameters(vhost))
    try:
        channel = conn.channel()
        bodies = [channel.basic_get("video", auto_ack=True)[2] for _ in range(2)]
    finally:
        conn.close()
    assert bodies == [b"1", b"2"]
