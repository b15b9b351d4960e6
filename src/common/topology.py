"""Queue names and their declaration: work queues, retry delay queues, dead-letter queues.

Every queue is a quorum queue, replicated on every node of the cluster it is declared on, so
the loss of one node of three loses and blocks nothing. Releases before this one kept the
dead-letter queues and the delay queues (then `<queue>.retry.<n>`) as classic queues, which
live on one node: `python -m ops migrate` (ops.queues) converts the former in place and empties
the latter into today's delay queues.
"""

import logging
import random
import time

import pika.exceptions

log = logging.getLogger(__name__)
DECLARE_TRIES = 5  # declarations of a queue another client is creating at the same moment
DECLARE_PAUSE_SECONDS = 0.1  # before the next, times the tries made
_BEING_CREATED = "is down or inaccessible"  # RabbitMQ's 404 for such a declaration

VIDEO = "video"
# The lane of long conversions: a converter that finds a job longer than LONG_JOB_SECONDS on
# `video` hands it over here (``Jobs.to_long_lane``), and every converter consumes both queues
# at once, so a short job never waits behind a long one.
VIDEO_LONG = "video.long"
VIDEO_QUEUES = (VIDEO, VIDEO_LONG)
MP3 = "mp3"
WORK_QUEUES = (VIDEO, VIDEO_LONG, MP3)
# Webhooks (notification): each job's result and expiry as an event on `webhooks`, expanded
# into one message per endpoint on `webhooks.deliver`, each retried on its own schedule
# (WEBHOOK_RETRY_DELAYS) through `webhooks.deliver.delay.<n>`: every message of one such queue
# has the same TTL, so none waits behind a longer one.
WEBHOOKS = "webhooks"
WEBHOOK_DELIVERIES = "webhooks.deliver"
WEBHOOK_QUEUES = (WEBHOOKS, WEBHOOK_DELIVERIES)
WEBHOOK_DELAY_QUEUES = 12  # common.webhooks.MAX_RETRY_DELAYS
ALL_QUEUES = WORK_QUEUES + WEBHOOK_QUEUES
# The broker's own guard against a message that kills every consumer before it can be
# counted. Fixed, so that changing MAX_DELIVERY_ATTEMPTS never conflicts with declared queues;
# the consumer enforces MAX_DELIVERY_ATTEMPTS itself.
BROKER_DELIVERY_LIMIT = 20


def dlq(queue: str) -> str:
    """Name of the dead-letter queue of ``queue`` (the work queue's own dead-letter target)."""
    return f"{queue}.dlq"


def retry_queue(queue: str, attempt: int) -> str:
    """Name of the delay queue used before delivery attempt ``attempt + 1``."""
    return f"{queue}.delay.{attempt}"


def legacy_retry_queue(queue: str, attempt: int) -> str:
    """Name of the classic delay queue an earlier release used before attempt ``attempt + 1``."""
    return f"{queue}.retry.{attempt}"


QUORUM = {"x-queue-type": "quorum"}


def work_arguments(queue: str) -> dict:
    """A work queue's arguments (unchanged since work queues became quorum queues: a queue
    redeclared with other arguments is refused)."""
    return {
        **QUORUM,
        "x-delivery-limit": BROKER_DELIVERY_LIMIT,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dlq(queue),
    }


def retry_arguments(queue: str) -> dict:
    """A delay queue's arguments: each message's own TTL (``expiration``), then it is
    dead-lettered back to ``queue``, at least once: the delay queue keeps it until ``queue``
    confirmed it (which needs ``reject-publish``)."""
    return {
        **QUORUM,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): capped exponential, jittered."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def declare(channel, max_attempts: int, queues=ALL_QUEUES) -> None:
    """Declare every queue the services use; safe to call any number of times, and by many
    clients at once (a stack's services start together). The declarations go over a channel
    of their own on ``channel``'s connection, which RabbitMQ may close (see _declare)."""
    connection = channel.connection
    scratch = [connection.channel()]
    try:
        for queue in queues:
            declare_dead_letter_queue(channel, queue)
            _declare(connection, scratch, queue, work_arguments(queue))
            delays = max_attempts
            if queue == WEBHOOK_DELIVERIES:
                delays = max(max_attempts, WEBHOOK_DELAY_QUEUES + 1)
            for attempt in range(1, delays):
                _declare(connection, scratch, retry_queue(queue, attempt),
                         retry_arguments(queue))
    finally:
        if scratch[0].is_open:
            scratch[0].close()


def _declare(connection, channel: list, name: str, arguments: dict) -> None:
    """Declare queue ``name`` on ``channel[0]``. A declaration that lands while another client
    is still creating the same quorum queue is refused with 404 "home node ... is down or
    inaccessible" and its channel closed (RabbitMQ 3.10, seen when a stack's services start
    together): tried again on a new channel (``channel[0]`` then), a little later, up to
    DECLARE_TRIES times. Any other refusal is raised."""
    for attempt in range(1, DECLARE_TRIES + 1):
        try:
            channel[0].queue_declare(queue=name, durable=True, arguments=arguments)
            return
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404 or _BEING_CREATED not in (exc.reply_text or "") or (
                    attempt == DECLARE_TRIES):
                raise
            log.info("queue being created by another client: declaring it again",
                     extra={"queue": name, "attempt": attempt})
            time.sleep(DECLARE_PAUSE_SECONDS * attempt)
            channel[0] = connection.channel()


_legacy_reported: set[str] = set()


def declare_dead_letter_queue(channel, queue: str, report: bool = True) -> bool:
    """Declare ``queue``'s dead-letter queue as a quorum queue; False when it is still the
    classic queue of an earlier release (kept and used as it is, with a warning, until `python
    -m ops migrate` converts it: refusing it would stop every service of a rolling upgrade).

    The broker closes a channel that declares an existing queue with other arguments, so this
    one is tried on a channel of its own.
    """
    name = dlq(queue)
    scratch = [channel.connection.channel()]
    try:
        _declare(channel.connection, scratch, name, QUORUM)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 406:  # PRECONDITION_FAILED: the queue exists with other arguments
            raise
        if report and name not in _legacy_reported:
            _legacy_reported.add(name)
            log.warning("dead-letter queue of an earlier release: run python -m ops migrate",
                        extra={"queue": name, "error": exc.reply_text})
        return False
    finally:
        if scratch[0].is_open:
            scratch[0].close()
