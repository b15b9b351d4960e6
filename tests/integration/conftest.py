"""Helpers for driving the real converter and notification processes through RabbitMQ."""

import contextlib
import json
import time
import uuid

import gridfs
import pika
import pytest
from bson import ObjectId

from common import messages
from common.broker import Publisher
from common.settings import MongoSettings
from common.store import DONE, FAILED, Store


class Pipeline:
    """A running stack's queues and MongoDB, seen from outside the services."""

    def __init__(self, stack):
        self.stack = stack
        self.url = stack.env["RABBITMQ_URL"]
        self.store = Store(MongoSettings(stack.env["MONGODB_URI"], stack.env["MONGODB_DB"]))
        self.publisher = Publisher(self.url, int(stack.env["MAX_DELIVERY_ATTEMPTS"]))

    def close(self) -> None:
        """Close the connections."""
        self.publisher.close()
        self.store.close()

    def upload(self, path, owner: str, filename: str | None = None) -> messages.VideoMessage:
        """Store the video and its job as the gateway does; returns the `video` message."""
        filename = filename or path.name
        job_id = ObjectId()
        with open(path, "rb") as fh:
            fid = gridfs.GridFSBucket(self.store.client["videos"]).upload_from_stream(
                filename, fh, metadata={"owner": owner, "job_id": str(job_id)})
        self.store.create_job(job_id, owner, fid, filename, "video/mp4", path.stat().st_size)
        return messages.VideoMessage(str(job_id), str(fid), owner)

    def publish(self, queue: str, body: bytes, headers: dict | None = None) -> None:
        """Publish with the broker's confirm."""
        self.publisher.publish(queue, body, headers=headers)

    def wait_job(self, job_id: str, timeout: float = 60.0) -> dict:
        """The job once it is done or failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.store.get_job(job_id)
            if job and job["status"] in (DONE, FAILED):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} not finished after {timeout}s: {job}")

    def wait_log(self, service: str, *needles: str, timeout: float = 30.0) -> dict:
        """The first JSON log line of ``service`` containing every needle."""
        process = self.stack.processes[service]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in process.log_text().splitlines():
                if all(n in line for n in needles) and line.startswith("{"):
                    return json.loads(line)
            time.sleep(0.2)
        raise AssertionError(f"{service} never logged {needles}:\n{process.log_tail()}")

    def count(self, queue: str) -> int:
        """Messages ready in ``queue``."""
        with self._channel() as channel:
            return channel.queue_declare(queue, passive=True).method.message_count

    def get_all(self, queue: str) -> list[tuple[dict, bytes]]:
        """Take every message from ``queue``: (headers, body) pairs."""
        found = []
        with self._channel() as channel:
            while True:
                method, props, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return found
                found.append((props.headers or {}, body))

    def mp3_files(self, job_id: str) -> list[dict]:
        """GridFS `mp3s` files made for the job."""
        return list(self.store.client["mp3s"]["fs.files"].find({"metadata.job_id": job_id}))

    @contextlib.contextmanager
    def _channel(self):
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            yield conn.channel()
        finally:
            conn.close()


@pytest.fixture
def pipeline_factory(stack_factory):
    """pipeline_factory(*services) -> a Pipeline over a fresh stack running those services."""
    made = []

    def make(*services: str) -> Pipeline:
        pipeline = Pipeline(stack_factory(services=services))
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()


@pytest.fixture
def user() -> str:
    """An email address no other test uses."""
    return f"user-{uuid.uuid4().hex[:12]}@example.com"
