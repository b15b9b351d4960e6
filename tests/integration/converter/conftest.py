"""A converter wired to the test MongoDB and a RabbitMQ vhost of its own."""

import uuid

import pika
import pytest

from common.broker import Publisher
from common.consumer import Delivery
from common.settings import ConsumerSettings, MessagingSettings, MongoSettings
from common.store import Store
from converter.config import ConverterConfig
from tools.media import ffmpeg_exe


@pytest.fixture
def channel(vhost):
    """A channel on the module's vhost, every work and dead-letter queue emptied."""
    conn = pika.BlockingConnection(pika.URLParameters(vhost))
    yield conn.channel()
    conn.close()


@pytest.fixture
def converter_config(vhost, mongodb_uri, tmp_path):
    """Converter settings for the test servers."""
    return ConverterConfig(
        ffmpeg=ffmpeg_exe(), mp3_quality=2, ffmpeg_timeout=60.0,
        mongo=MongoSettings(uri=mongodb_uri, db=f"mp3test_{uuid.uuid4().hex[:8]}"),
        messaging=MessagingSettings(vhost, 3, 1.0, 5.0),
        consumer=ConsumerSettings(5.0, str(tmp_path / "hb"), 60.0), log_level="WARNING")


@pytest.fixture
def store(converter_config):
    """The converter's MongoDB store."""
    store = Store(converter_config.mongo)
    yield store
    store.client.drop_database(converter_config.mongo.db)
    store.close()


@pytest.fixture
def publisher(vhost):
    """A publisher like the one the consumer loop hands to handlers."""
    publisher = Publisher(vhost, 3)
    yield publisher
    publisher.close()


@pytest.fixture
def deliver(publisher):
    """deliver(body, **fields) -> a Delivery as the consumer loop builds it."""
    def make(body: bytes, **fields) -> Delivery:
        return Delivery(body=body, headers={}, redelivered=fields.get("redelivered", False),
                        attempt=fields.get("attempt", 1), publisher=publisher)

    return make
