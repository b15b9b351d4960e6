"""The queue consumer loop: work off the connection thread, retry, dead-letter, stop gracefully."""

import abc
import functools
import logging
import queue as queuelib
import random
import signal
import threading
import time
from dataclasses import dataclass, field

import pika
import pika.exceptions

from common import heartbeat, metrics, topology
from common import log as jsonlog
from common.broker import Publisher, PublisherPool, connect
from common.errors import PermanentError
from common.settings import ConsumerSettings, MessagingSettings, load_or_exit
from common.store import Store

log = logging.getLogger(__name__)

RECONNECT_ERRORS = (pika.exceptions.AMQPConnectionError, OSError)
MAX_BACKOFF_SECONDS = 30.0


@dataclass
class Delivery:
    """One message handed to a handler, with what the handler may need to act on it."""

    body: bytes
    headers: dict
    redelivered: bool
    attempt: int
    publisher: Publisher | PublisherPool
    abandon: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None  # why it is retried or dead-lettered


class Handler(abc.ABC):
    """What a service plugs into the consumer loop."""

    queue: str = ""

    @abc.abstractmethod
    def handle(self, delivery: Delivery) -> None:
        """Do the work; raise PermanentError or any other exception (retried) to fail."""

    def on_failure(self, delivery: Delivery, reason: str,
                   permanent: bool) -> bool:
        """Record a final failure: ``permanent`` when the message itself is at fault, not an
        outage that outlasted the retries. Return True when that is recorded as the end of
        the message's job (its owner is told why): a permanent one then needs no operator and
        is not dead-lettered. The default records nothing: the message is dead-lettered."""
        return False

    def on_outcome(self, delivery: Delivery, outcome: str) -> None:  # noqa: B027 - optional
        """Hear that the message was ``retried`` (a retry is scheduled) or ``dead_lettered``;
        ``delivery.error`` says why (None: it was redelivered too often)."""


def attempt_number(headers: dict) -> int:
    """1-based attempt number: earlier retries plus broker redeliveries plus this one."""
    retries = int(headers.get("x-attempt", 0) or 0)
    redeliveries = int(headers.get("x-delivery-count", 0) or 0)
    return retries + redeliveries + 1


class Consumer:
    """Consume one queue with prefetch 1; ack only after the handler's work is recorded."""

    def __init__(self, handler: Handler, messaging: MessagingSettings, settings: ConsumerSettings):
        self.handler = handler
        self.messaging = messaging
        self.settings = settings
        self._stopping = threading.Event()
        self._inbox: queuelib.Queue = queuelib.Queue()
        self._abandon = threading.Event()
        self._connection = None

    # -- signals ---------------------------------------------------------------------------
    def request_stop(self, *_args) -> None:
        """Stop taking messages; the job in hand is finished first (SIGTERM, SIGINT)."""
        if not self._stopping.is_set():
            log.info("stop requested: finishing the job in hand")
        self._stopping.set()

    # -- main thread -------------------------------------------------------------------------
    def run(self) -> int:
        """Consume until stopped (SIGTERM, SIGINT); returns the process exit status."""
        return run_all([self])

    def consume_until_stopped(self) -> int:
        """The connection loop, in the calling thread, until ``request_stop``; the exit
        status (1: a channel error, which retrying will not heal)."""
        worker = threading.Thread(target=self._work_loop, name=f"worker-{self.handler.queue}",
                                  daemon=True)
        worker.start()
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                self._consume()
                backoff = 1.0
            except pika.exceptions.AMQPChannelError:
                # A protocol or topology error (e.g. a queue declared with other arguments)
                # will not heal by retrying: stop loudly and let the supervisor restart us.
                log.critical("channel error: exiting", exc_info=True)
                return 1
            except RECONNECT_ERRORS as exc:
                delay = random.uniform(backoff / 2, backoff)
                log.warning("broker connection lost, reconnecting", extra={
                    "error": repr(exc), "retry_in": round(delay, 2)})
                self._sleep(delay)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        if self._idle():
            self._inbox.put(None)
            worker.join(timeout=5)
        log.info("consumer stopped")
        return 0

    def _beat(self) -> None:
        """The loop still turns: for the liveness probe and the metrics."""
        heartbeat.touch(self.settings.heartbeat_file)
        metrics.CONSUMER_HEARTBEAT.set(time.time())

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and time.monotonic() < deadline:
            self._beat()
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def _consume(self) -> None:
        connection = connect(self.messaging.rabbitmq_url, heartbeat=30)
        self._connection = connection
        try:
            channel = connection.channel()
            topology.declare(channel, self.messaging.max_attempts)
            channel.basic_qos(prefetch_count=1)
            tag = channel.basic_consume(self.handler.queue, self._on_message)
            log.info("consuming", extra={"queue": self.handler.queue})
            _report_connected(self, True)
            while not self._stopping.is_set():
                connection.process_data_events(time_limit=1)
                self._beat()
            channel.basic_cancel(tag)
            self._finish_in_hand(connection)
        finally:
            _report_connected(self, False)
            if connection.is_open:
                connection.close()

    def _finish_in_hand(self, connection) -> None:
        deadline = time.monotonic() + self.settings.grace_seconds
        while not self._idle() and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.5)
            self._beat()
        if self._idle():
            connection.process_data_events(time_limit=0)  # flush the last ack
        else:
            log.warning("grace period over: abandoning the job in hand, it stays unacked",
                        extra={"grace_seconds": self.settings.grace_seconds})
            self._abandon.set()

    def _idle(self) -> bool:
        """No delivery is waiting for or being handled by the worker."""
        return self._inbox.unfinished_tasks == 0

    def _on_message(self, channel, method, props, body) -> None:
        self._inbox.put((channel, method, props, body))

    # -- worker thread -----------------------------------------------------------------------
    def _work_loop(self) -> None:
        # A pool of one: its connection is kept alive while no message comes and while a long
        # job runs, so the job's result is published at once, on a connection the broker kept.
        publisher = PublisherPool(self.messaging.rabbitmq_url, self.messaging.max_attempts, 1)
        while True:
            item = self._inbox.get()
            if item is None:
                break
            channel, method, props, body = item
            try:
                ack = self._process(publisher, props, body, method.redelivered)
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("could not settle message; leaving it to the broker")
                ack = False
            if not self._abandon.is_set():
                self._settle(channel, method.delivery_tag, ack)
            self._inbox.task_done()
        publisher.close()

    def _process(self, publisher: PublisherPool, props, body: bytes, redelivered: bool) -> bool:
        """Run the handler; returns True to ack, False to requeue."""
        headers = dict(props.headers or {})
        delivery = Delivery(body=body, headers=headers, redelivered=redelivered,
                            attempt=attempt_number(headers), publisher=publisher,
                            abandon=self._abandon)
        queue = self.handler.queue
        if delivery.attempt > self.messaging.max_attempts:
            # Redelivered after its consumers stopped while handling it, too many times.
            return self._give_up(delivery, f"gave up after {delivery.attempt - 1} attempts: "
                                           "the handler stopped before finishing",
                                 permanent=False)
        try:
            self.handler.handle(delivery)
            return True
        except PermanentError as exc:
            log.warning("permanent failure", extra={"error": str(exc)})
            delivery.error = exc
            return self._give_up(delivery, str(exc), permanent=True)
        except Exception as exc:  # noqa: BLE001 - any other error is worth a retry
            if self._abandon.is_set():
                return False
            delivery.error = exc
            if delivery.attempt >= self.messaging.max_attempts:
                reason = f"gave up after {delivery.attempt} attempts: {exc}"
                log.error("giving up", extra={"error": str(exc), "attempt": delivery.attempt})
                return self._give_up(delivery, reason, permanent=False)
            delay = topology.retry_delay(delivery.attempt, self.messaging.retry_base_seconds,
                                         self.messaging.retry_max_seconds)
            log.warning("attempt failed, will retry", exc_info=True, extra={
                "attempt": delivery.attempt, "retry_in": round(delay, 2), "error": str(exc)})
            retry_headers = {k: v for k, v in headers.items() if not k.startswith("x-death")}
            retry_headers["x-attempt"] = delivery.attempt  # crash redeliveries included
            retry_headers.pop("x-delivery-count", None)
            try:
                publisher.publish(topology.retry_queue(queue, delivery.attempt), body,
                                  headers=retry_headers, expiration_ms=int(delay * 1000))
            except Exception:  # noqa: BLE001
                log.exception("could not schedule retry; requeueing")
                return False
            self._outcome(delivery, "retried")
            return True

    def _give_up(self, delivery: Delivery, reason: str, permanent: bool) -> bool:
        """Record the final failure, then dead-letter the message, unless it was at fault and
        the handler recorded the end of its job (a file that is no media: the owner is told,
        and a re-drive could only fail again). True: settle it; False: requeue."""
        try:
            if self.handler.on_failure(delivery, reason, permanent) and permanent:
                return True
            delivery.publisher.publish(
                topology.dlq(self.handler.queue), delivery.body,
                headers={"x-error": reason[:1000], "x-attempts": delivery.attempt,
                         "x-failed-at": int(time.time())})
        except Exception:  # noqa: BLE001
            log.exception("could not dead-letter; requeueing")
            return False
        self._outcome(delivery, "dead_lettered")
        return True

    def _outcome(self, delivery: Delivery, outcome: str) -> None:
        try:
            self.handler.on_outcome(delivery, outcome)
        except Exception:  # noqa: BLE001 - only metrics: the message is settled all the same
            log.warning("could not record the outcome", exc_info=True)

    def _settle(self, channel, delivery_tag: int, ack: bool) -> None:
        connection = self._connection
        callback = functools.partial(self._settle_now, channel, delivery_tag, ack)
        try:
            connection.add_callback_threadsafe(callback)
        except Exception:  # noqa: BLE001 - connection already gone: the broker redelivers
            log.warning("connection gone before ack; message will be redelivered")

    @staticmethod
    def _settle_now(channel, delivery_tag: int, ack: bool) -> None:
        if not channel.is_open:
            log.warning("channel closed before ack; message will be redelivered")
            return
        if ack:
            channel.basic_ack(delivery_tag)
        else:
            channel.basic_nack(delivery_tag, requeue=True)


_connected: dict[int, bool] = {}  # each consumer of this process: consuming now?
_connected_lock = threading.Lock()


def _report_connected(consumer: Consumer, up: bool) -> None:
    """The metric is 1 only while every queue of the process is consumed."""
    with _connected_lock:
        _connected[id(consumer)] = up
        metrics.CONSUMER_CONNECTED.set(1 if all(_connected.values()) else 0)


def run_all(consumers: list[Consumer]) -> int:
    """Run consumers side by side, one connection loop each (the first in the calling
    thread), until SIGTERM or SIGINT stops them all; one that fails stops the others. The
    exit status: 1 if any failed."""

    def stop_all(*_args) -> None:
        for consumer in consumers:
            consumer.request_stop()

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    with _connected_lock:  # this process's consumers are these
        _connected.clear()
        _connected.update({id(consumer): False for consumer in consumers})
    statuses = [0] * len(consumers)

    def loop(index: int) -> None:
        try:
            statuses[index] = consumers[index].consume_until_stopped()
        except BaseException:
            statuses[index] = 1
            log.critical("consumer loop crashed", exc_info=True)
        if statuses[index]:
            stop_all()

    others = [threading.Thread(target=loop, args=(index,), name=f"consumer-{index}")
              for index in range(1, len(consumers))]
    for thread in others:
        thread.start()
    loop(0)
    for thread in others:
        thread.join()
    return max(statuses)


def serve(service: str, load_config, make_handlers) -> int:
    """Run a consumer service until SIGTERM: settings, JSON logs, MongoDB, one consumer loop
    per handler ``make_handlers(config, store)`` returns (a handler or a list of them)."""
    config = load_or_exit(load_config, service)
    jsonlog.configure(service, config.log_level)
    metrics.configure(service)
    metrics.serve(config.metrics.port, config.metrics.host)
    handlers = make_handlers(config, Store(config.mongo))
    if isinstance(handlers, Handler):
        handlers = [handlers]
    return run_all([Consumer(handler, config.messaging, config.consumer)
                    for handler in handlers])
