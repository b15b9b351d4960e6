"""Dead letters: list them with their reason, and try their jobs again."""

import json

from common import topology
from common.broker import connect


def _open(url: str, max_attempts: int):
    connection = connect(url)
    channel = connection.channel()
    topology.declare(channel, max_attempts)
    return connection, channel


def dead_letters(url: str, max_attempts: int, queue: str) -> list[dict]:
    """The messages in ``queue``'s dead-letter queue, left in place."""
    connection, channel = _open(url, max_attempts)
    try:
        found = []
        while True:
            method, props, body = channel.basic_get(topology.dlq(queue), auto_ack=False)
            if method is None:
                break
            found.append(describe(props, body))
        return found  # closing the connection returns every message to the queue
    finally:
        connection.close()


def redrive(url: str, max_attempts: int, queue: str, jobs, publisher) -> dict:
    """Take every dead letter of ``queue`` and hand its job back to the lifecycle, which
    publishes it afresh; dead letters with nothing left to retry are dropped."""
    connection, channel = _open(url, max_attempts)
    counts = {"redriven": 0, "dropped": 0}
    try:
        while True:
            method, props, body = channel.basic_get(topology.dlq(queue), auto_ack=False)
            if method is None:
                break
            if queue in topology.WEBHOOK_QUEUES:
                # as it was, with fresh attempts: a delivery that succeeded meanwhile is not
                # sent again (its webhook-id is recorded), nor one to a deleted endpoint
                publisher.publish(queue, body)
                retried = True
            else:
                job_id = describe(props, body)["job_id"]
                retried = bool(job_id) and jobs.redrive(job_id, queue, publisher)
            counts["redriven" if retried else "dropped"] += 1
            channel.basic_ack(method.delivery_tag)  # after the new message is confirmed
    finally:
        connection.close()
    return counts


def describe(props, body: bytes) -> dict:
    """A dead letter as an operator reads it: job id, reason, attempts, the start of the body."""
    headers = props.headers or {}
    reason = headers.get("x-error")
    if reason is None and headers.get("x-death"):
        death = headers["x-death"][0]
        reason = f"{death.get('reason')} (from {death.get('queue')})"
    if isinstance(reason, bytes):
        reason = reason.decode(errors="replace")
    try:
        doc = json.loads(body)
        job_id = doc.get("job_id") if isinstance(doc, dict) else None
    except ValueError:
        job_id = None
    return {"job_id": job_id, "reason": reason, "attempts": headers.get("x-attempts"),
            "body": body.decode(errors="replace")[:500]}
