"""Broker connections and a publisher that waits for the broker's confirm."""

import contextlib
import logging
import random
import threading
import time
import urllib.parse

import pika
import pika.exceptions

from common import topology
from common.errors import RetryableError
from common.settings import amqp_urls

log = logging.getLogger(__name__)

NACK_RETRY_SECONDS = 0.5
CONNECTION_ERRORS = (
    pika.exceptions.AMQPConnectionError, pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionWrongStateError, pika.exceptions.ChannelWrongStateError,
    pika.exceptions.ChannelClosed, OSError,
)


def _parameters(url: str, heartbeat: int | None) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.socket_timeout = 5
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    if heartbeat is not None and "heartbeat" not in urllib.parse.parse_qs(
            urllib.parse.urlsplit(url).query):
        params.heartbeat = heartbeat
    return params


def parameters(url: str, heartbeat: int | None = None) -> list[pika.URLParameters]:
    """Connection parameters of every address of RABBITMQ_URL (one AMQP URL, or the nodes of
    a cluster separated by commas) in random order, with bounded timeouts: a connection tries
    them in turn, so clients spread over the nodes and one that reconnects after a node was
    lost lands on a live one.

    ``heartbeat`` applies unless the URL sets its own (``?heartbeat=N``).
    """
    found = [_parameters(address, heartbeat) for address in amqp_urls(url)]
    random.shuffle(found)
    return found


def connect(url: str, heartbeat: int | None = None) -> pika.BlockingConnection:
    """Open a blocking connection to the first node of ``url`` that accepts it."""
    return pika.BlockingConnection(parameters(url, heartbeat))


class Publisher:
    """Publishes persistent messages with confirms. Use one per thread; never share it.

    The thread (or greenlet) that made it owns it; a PublisherPool hands it from one to the next.
    """

    def __init__(self, url: str, max_attempts: int):
        self.url = url
        self.max_attempts = max_attempts
        self._connection = None
        self._channel = None
        self._owner = threading.get_ident()

    def claim(self) -> None:
        """Make the calling thread (or greenlet) the only one allowed to use it."""
        self._owner = threading.get_ident()

    def release(self) -> None:
        """Allow nobody to use it until the next ``claim()``."""
        self._owner = None

    def _check_owner(self) -> None:
        assert threading.get_ident() == self._owner, "Publisher used from a second thread"

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
        self._check_owner()
        props = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type="application/json",
            headers=headers or {},
            expiration=str(expiration_ms) if expiration_ms is not None else None,
        )
        last = None
        for attempt in range(2):  # the idle connection may have been dropped: reopen once
            try:
                self._open().basic_publish("", queue, body, props, mandatory=True)
                return
            except pika.exceptions.UnroutableError as exc:
                raise RetryableError(f"broker refused message for {queue}: {exc!r}",
                                     kind="broker") from exc
            except pika.exceptions.NackError as exc:
                # A quorum queue refuses while it elects a leader (a node was lost): once more,
                # on a fresh connection, after the election has had a moment.
                last = exc
                self.close()
                if attempt == 0:
                    time.sleep(NACK_RETRY_SECONDS)
            except CONNECTION_ERRORS as exc:
                last = exc
                self.close()
        if isinstance(last, pika.exceptions.NackError):
            raise RetryableError(f"broker refused message for {queue}: {last!r}",
                                 kind="broker") from last
        raise RetryableError(f"broker unreachable: {last!r}", kind="broker") from last

    def ping(self) -> None:
        """Raise RetryableError when the broker cannot be reached."""
        self._check_owner()
        last = None
        for _ in range(2):  # the idle connection may have been dropped: reopen once
            try:
                self._open()
                self._connection.process_data_events(0)
                return
            except CONNECTION_ERRORS as exc:
                last = exc
                self.close()
        raise RetryableError(f"broker unreachable: {last!r}", kind="broker") from last

    def keep_alive(self) -> None:
        """Let an idle connection send its heartbeat when one is due and read the broker's.

        A blocking connection does that only while it is used: one left idle for two
        heartbeat intervals is dropped by the broker. A connection found dead is closed (the
        next use opens another).
        """
        self._check_owner()
        if self._connection is None:
            return
        try:
            self._connection.process_data_events(0)
        except CONNECTION_ERRORS:
            self.close()

    def close(self) -> None:
        """Close the connection, ignoring errors from an already dead one."""
        conn, self._connection, self._channel = self._connection, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                log.debug("error closing broker connection", exc_info=True)


class PublisherPool:
    """Up to ``size`` Publishers shared by the threads or greenlets of one process.

    Each call borrows one Publisher for itself alone and gives it back, so a process keeps at
    most ``size`` broker connections however many requests it serves at once. A thread (a
    greenlet under gevent) services the heartbeats of the idle ones a few times per heartbeat
    interval, so the broker never drops them for silence; one dropped all the same (a broker
    restart) is reopened on its next use.
    """

    WAIT_SECONDS = 10  # for a free Publisher, before answering that the broker is busy
    # for the idle Publisher the keeper is beating, before opening another connection: a use
    # that falls in that moment takes it back rather than add a connection to the broker
    KEEPER_WAIT_SECONDS = 1.0

    def __init__(self, url: str, max_attempts: int, size: int):
        self.url, self.max_attempts, self.size = url, max_attempts, size
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)  # the keeper gave one back
        self._idle: list[Publisher] = []
        self._kept = 0  # idle Publishers the keeper holds this moment
        self.opened = 0  # Publishers made so far (at most ``size``)
        # The broker's heartbeat is the URL's (?heartbeat=N), else its own (60 s by default);
        # the shortest of the addresses' when they differ.
        heartbeat = min(params.heartbeat or 60 for params in parameters(url))
        self.keep_alive_seconds = max(0.1, min(heartbeat, 20) / 4)
        self._stopping = threading.Event()
        self._keeper = threading.Thread(target=self._keep_alive_loop, daemon=True,
                                        name="broker-keepalive")
        self._keeper.start()

    def _keep_alive_loop(self) -> None:
        while not self._stopping.wait(self.keep_alive_seconds):
            try:
                self.keep_alive()
            except Exception:  # noqa: BLE001 - the keeper must outlive any one connection
                log.warning("could not keep the idle broker connections alive", exc_info=True)

    def keep_alive(self) -> None:
        """Service the heartbeats of every idle Publisher's connection, one at a time, each
        borrowed like any other use (a lent one is busy, hence not silent)."""
        with self._lock:
            count = len(self._idle)
        for _ in range(count):
            if not self._slots.acquire(blocking=False):
                return  # every connection is lent
            try:
                with self._lock:
                    if not self._idle:
                        return
                    publisher = self._idle.pop(0)  # the longest idle first
                    self._kept += 1
                publisher.claim()
                try:
                    publisher.keep_alive()
                finally:
                    publisher.release()
                    with self._lock:
                        self._idle.append(publisher)
                        self._kept -= 1
                        self._returned.notify()
            finally:
                self._slots.release()

    @contextlib.contextmanager
    def lend(self):
        """A Publisher that only the calling thread or greenlet may use inside the block."""
        if not self._slots.acquire(timeout=self.WAIT_SECONDS):
            raise RetryableError(f"all {self.size} broker connections stayed busy for "
                                 f"{self.WAIT_SECONDS} s", kind="broker")
        try:
            with self._lock:
                if not self._idle and self._kept:
                    self._returned.wait_for(lambda: self._idle or not self._kept,
                                            timeout=self.KEEPER_WAIT_SECONDS)
                if self._idle:
                    publisher = self._idle.pop()
                else:
                    publisher = Publisher(self.url, self.max_attempts)
                    self.opened += 1
            publisher.claim()
            try:
                yield publisher
            except BaseException:
                publisher.close()  # interrupted mid-call: its connection may be half-used
                raise
            finally:
                publisher.release()  # a reference kept past the block cannot use it
                with self._lock:
                    self._idle.append(publisher)
        finally:
            self._slots.release()

    def publish(self, queue: str, body: bytes, headers: dict | None = None,
                expiration_ms: int | None = None) -> None:
        """Publisher.publish with a borrowed Publisher."""
        with self.lend() as publisher:
            publisher.publish(queue, body, headers, expiration_ms)

    def ping(self) -> None:
        """Publisher.ping with a borrowed Publisher."""
        with self.lend() as publisher:
            publisher.ping()

    def close(self) -> None:
        """Stop keeping connections alive and close the idle Publishers' connections."""
        self._stopping.set()
        if self._keeper is not threading.current_thread():
            self._keeper.join(5)
        with self._lock:
            idle, self._idle = self._idle, []
        for publisher in idle:
            publisher.close()
