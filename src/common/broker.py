"""Broker connections and a publisher that waits for the broker's confirm."""

import logging
import threading
import urllib.parse

import pika
import pika.exceptions

from common import topology
from common.errors import RetryableError

log = logging.getLogger(__name__)

CONNECTION_ERRORS = (
    pika.exceptions.AMQPConnectionError, pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionWrongStateError, pika.exceptions.ChannelWrongStateError,
    pika.exceptions.ChannelClosed, OSError,
)


def parameters(url: str, heartbeat: int | None = None) -> pika.URLParameters:
    """Connection parameters from an AMQP URL, with bounded timeouts.

    ``heartbeat`` applies unless the URL sets its own (``?heartbeat=N``).
    """
    params = pika.URLParameters(url)
    params.socket_timeout = 5
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    if heartbeat is not None and "heartbeat" not in urllib.parse.parse_qs(
            urllib.parse.urlsplit(url).query):
        params.heartbeat = heartbeat
    return params


def connect(url: str, heartbeat: int | None = None) -> pika.BlockingConnection:
    """Open a blocking connection."""
    return pika.BlockingConnection(parameters(url, heartbeat))


class Publisher:
    """Publishes persistent messages with confirms. Use one per thread; never share it."""

    def __init__(self, url: str, max_attempts: int):
        self.url = url
        self.max_attempts = max_attempts
        self._connection = None
        self._channel = None
        self._owner = threading.get_ident()

    def _open(self):
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self.close()
        self._connection = connect(self.url)
        channel = self._connection.channel()
        topology.declare(channel, self.max_attempts)
        channel.confirm_delivery()
        self._channel = channel
        return channel

    def publish(self, queue: str, body: bytes, headers: dict | None = None,
                expiration_ms: int | None = None) -> None:
        """Publish to ``queue``; raise RetryableError unless the broker confirmed it."""
        assert threading.get_ident() == self._owner, "Publisher used from a second thread"
        props = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type="application/json",
            headers=headers or {},
            expiration=str(expiration_ms) if expiration_ms is not None else None,
        )
        last = None
        for _ in range(2):  # the idle connection may have been dropped: reopen once
            try:
                self._open().basic_publish("", queue, body, props, mandatory=True)
                return
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                raise RetryableError(f"broker refused message for {queue}: {exc!r}") from exc
            except CONNECTION_ERRORS as exc:
                last = exc
                self.close()
        raise RetryableError(f"broker unreachable: {last!r}") from last

    def ping(self) -> None:
        """Raise RetryableError when the broker cannot be reached."""
        try:
            self._open()
            self._connection.process_data_events(0)
        except CONNECTION_ERRORS as exc:
            self.close()
            raise RetryableError(f"broker unreachable: {exc!r}") from exc

    def close(self) -> None:
        """Close the connection, ignoring errors from an already dead one."""
        conn, self._connection, self._channel = self._connection, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                log.debug("error closing broker connection", exc_info=True)
