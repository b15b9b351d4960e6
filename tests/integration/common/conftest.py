"""Fixtures for the shared package's tests: RabbitMQ vhosts of their own."""

import pytest

from tests.conftest import rabbitmq_vhost


@pytest.fixture
def fresh_vhost(rabbitmq_node):
    """amqp URL of a RabbitMQ vhost created for this test and deleted after it."""
    with rabbitmq_vhost(rabbitmq_node) as url:
        yield url
