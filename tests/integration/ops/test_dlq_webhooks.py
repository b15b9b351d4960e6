"""Dead-lettered webhook messages on a real RabbitMQ vhost: listed, and re-driven as they were
(a delivery's webhook-id keeps it from being sent twice)."""

import pika
import pytest

from common import messages, topology
from common.broker import Publisher
from ops.__main__ import QUEUE_CHOICE
from ops.dlq import dead_letters, redrive

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("queue", topology.WEBHOOK_QUEUES)
def test_a_webhook_dead_letter_is_listed_then_published_again_as_it_was(vhost, queue):
    assert queue in QUEUE_CHOICE.choices
    body = messages.encode(messages.WebhookEvent("job.done", "65f0c0ffee0000000000abcd", "a1"))
    publisher = Publisher(vhost, 3)
    conn = pika.BlockingConnection(pika.URLParameters(vhost))
    try:
        channel = conn.channel()
        channel.queue_purge(queue)
        channel.queue_purge(topology.dlq(queue))
        publisher.publish(topology.dlq(queue), body, headers={"x-error": "mongodb down",
                                                              "x-attempts": 3})
        [entry] = dead_letters(vhost, 3, queue)
        assert entry["job_id"] == "65f0c0ffee0000000000abcd"
        assert (entry["reason"], entry["attempts"]) == ("mongodb down", 3)
        assert redrive(vhost, 3, queue, None, publisher) == {"redriven": 1, "dropped": 0}
        method, _props, again = channel.basic_get(queue, auto_ack=True)
        assert method is not None and again == body
        assert channel.queue_declare(topology.dlq(queue), passive=True).method.message_count == 0
    finally:
        conn.close()
        publisher.close()
