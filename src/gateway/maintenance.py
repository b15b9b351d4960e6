"""Operator work: re-queue orphaned jobs, list and re-drive dead letters."""

import json
import logging

import pika

from common import messages, topology
from common.broker import Publisher, connect
from common.store import CONVERTING, FAILED, QUEUED, Store, now

log = logging.getLogger(__name__)


def sweep(store: Store, publisher: Publisher, config) -> dict:
    """Re-publish jobs whose message never went out; recover jobs whose converter died."""
    counts = {"republished": 0, "requeued": 0, "failed": 0}
    moment = now()
    unpublished = store.jobs.find({"status": QUEUED, "published_at": None,
                                   "created_at": {"$lt": moment - config.unpublished_job_seconds}})
    for job in list(unpublished):
        if store.find_file("videos", job["video_fid"]) is None:
            _fail(store, publisher, job, "the upload was interrupted before it was stored")
            counts["failed"] += 1
            continue
        _queue(store, publisher, job)
        counts["republished"] += 1
    stuck = store.jobs.find({"status": CONVERTING,
                             "updated_at": {"$lt": moment - config.stuck_job_seconds}})
    for job in list(stuck):
        if job.get("attempts", 0) >= config.messaging.max_attempts:
            _fail(store, publisher, job, f"gave up after {job['attempts']} attempts: "
                                         "the converter stopped responding")
            counts["failed"] += 1
        else:
            _queue(store, publisher, job, where={"status": CONVERTING})
            counts["requeued"] += 1
    log.info("sweep finished", extra=counts)
    return counts


def _queue(store: Store, publisher: Publisher, job: dict, where: dict | None = None) -> None:
    if not store.update_job(job["_id"], {"status": QUEUED, "progress": 0}, where=where):
        return
    message = messages.VideoMessage(str(job["_id"]), str(job["video_fid"]), job["owner"])
    publisher.publish(topology.VIDEO, messages.encode(message))
    store.update_job(job["_id"], {"published_at": now()})


def _fail(store: Store, publisher: Publisher, job: dict, reason: str) -> None:
    store.update_job(job["_id"], {"status": FAILED, "error": reason})
    result = messages.Mp3Message(job_id=str(job["_id"]), video_fid=str(job["video_fid"]),
                                 username=job["owner"], error=reason)
    publisher.publish(topology.MP3, messages.encode(result))
    store.update_job(job["_id"], {"result_published_at": now()})


def dead_letters(url: str, max_attempts: int, queue: str) -> list[dict]:
    """The messages in ``queue``'s dead-letter queue, left in place."""
    connection = connect(url)
    try:
        channel = connection.channel()
        topology.declare(channel, max_attempts)
        found = []
        while True:
            method, props, body = channel.basic_get(topology.dlq(queue), auto_ack=False)
            if method is None:
                break
            found.append(_describe(props, body))
        return found  # closing the connection returns every message to the queue
    finally:
        connection.close()


def redrive(url: str, max_attempts: int, queue: str, store: Store) -> int:
    """Move every dead letter of ``queue`` back onto it, reopening failed jobs."""
    connection = connect(url)
    moved = 0
    try:
        channel = connection.channel()
        topology.declare(channel, max_attempts)
        channel.confirm_delivery()
        while True:
            method, props, body = channel.basic_get(topology.dlq(queue), auto_ack=False)
            if method is None:
                break
            job_id = _describe(props, body).get("job_id")
            if queue == topology.VIDEO and job_id:
                store.update_job(job_id, {"status": QUEUED, "error": None, "progress": 0,
                                          "result_published_at": None, "notified_at": None},
                                 where={"status": FAILED})
            channel.basic_publish("", queue, body, _fresh_properties(props))
            channel.basic_ack(method.delivery_tag)
            moved += 1
    finally:
        connection.close()
    return moved


def _fresh_properties(props):
    return pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                content_type=props.content_type or "application/json")


def _describe(props, body: bytes) -> dict:
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
