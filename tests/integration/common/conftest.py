"""Fixtures for the shared package's tests: MongoDB databases and RabbitMQ vhosts of their own."""

import uuid

import pytest

from common.broker import Publisher
from common.settings import MongoSettings
from common.store import Store
from tests.conftest import rabbitmq_vhost


@pytest.fixture
def fresh_vhost(rabbitmq_node):
    """amqp URL of a RabbitMQ vhost created for this test and deleted after it."""
    with rabbitmq_vhost(rabbitmq_node) as url:
        yield url


@pytest.fixture
def store(mongodb_uri):
    """A Store on a MongoDB database made for this test and dropped after it."""
    store = Store(MongoSettings(mongodb_uri, f"mp3test_{uuid.uuid4().hex[:12]}"))
    yield store
    store.client.drop_database(store.db.name)
    store.close()


@pytest.fixture
def publisher(fresh_vhost):
    """A confirming publisher on this test's vhost."""
    publisher = Publisher(fresh_vhost, 3)
    yield publisher
    publisher.close()
