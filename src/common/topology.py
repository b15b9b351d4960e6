"""Queue names and their declaration: work queues, retry delay queues, dead-letter queues."""

import random

VIDEO = "video"
MP3 = "mp3"
WORK_QUEUES = (VIDEO, MP3)
# The broker's own guard against a message that kills every consumer before it can be
# counted. Fixed, so that changing MAX_DELIVERY_ATTEMPTS never conflicts with declared queues;
# the consumer enforces MAX_DELIVERY_ATTEMPTS itself.
BROKER_DELIVERY_LIMIT = 20


def dlq(queue: str) -> str:
    """Name of the dead-letter queue of ``queue``."""
    return f"{queue}.dlq"


def retry_queue(queue: str, attempt: int) -> str:
    """Name of the delay queue used before delivery attempt ``attempt + 1``."""
    return f"{queue}.retry.{attempt}"


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): capped exponential, jittered."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def declare(channel, max_attempts: int, queues=WORK_QUEUES) -> None:
    """Declare every queue the services use; safe to call any number of times."""
    for queue in queues:
        channel.queue_declare(queue=dlq(queue), durable=True)
        channel.queue_declare(
            queue=queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": BROKER_DELIVERY_LIMIT,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dlq(queue),
            },
        )
        for attempt in range(1, max_attempts):
            channel.queue_declare(
                queue=retry_queue(queue, attempt),
                durable=True,
                arguments={
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue,
                },
            )
