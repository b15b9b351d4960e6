"""Fixtures for the shared package's tests: RabbitMQ vhosts of their own."""

import pika
import pytest

from common import topology
from tests.conftest import rabbitmq_vhost


@pytest.fixture
def fresh_vhost():
    """amqp URL of a RabbitMQ vhost created for this test and deleted after it."""
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture(scope="module")
def module_vhost():
    """amqp URL of a RabbitMQ vhost shared by one test module."""
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def vhost(module_vhost):
    """The module's vhost with the topology (3 attempts) declared and every queue empty."""
    conn = pika.BlockingConnection(pika.URLParameters(module_vhost))
    try:
        channel = conn.channel()
        topology.declare(channel, 3)
        for queue in topology.WORK_QUEUES:
            channel.queue_purge(queue)
            channel.queue_purge(topology.dlq(queue))
    finally:
        conn.close()
    return module_vhost
