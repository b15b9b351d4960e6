"""Helpers for driving the real converter and notification processes through RabbitMQ."""

import contextlib
import json
import time
import uuid

import gridfs
import pytest
from bson import ObjectId

from common import covers, messages
from common.broker import PublisherPool, connect
from common.jobs import Jobs, Status
from common.settings import LifecycleSettings, MongoSettings
from common.store import MP3S, VIDEOS, Store
from tools import devstack


class Pipeline:
    """A running stack's queues and MongoDB, seen from outside the services."""

    def __init__(self, stack):
        self.stack = stack
        self.url = stack.env["RABBITMQ_URL"]
        self.store = Store(MongoSettings(stack.env["MONGODB_URI"], stack.env["MONGODB_DB"]))
        self.jobs = Jobs(self.store)
        # kept alive between a test's publishes, however long it waits in between
        self.publisher = PublisherPool(self.url, int(stack.env["MAX_DELIVERY_ATTEMPTS"]), 1)

    def close(self) -> None:
        """Close the connections."""
        self.publisher.close()
        self.store.close()

    def upload(self, path, owner: str, filename: str | None = None,
               queue: bool = True) -> messages.VideoMessage:
        """Store the video and its job as the gateway does, which queues it; returns its
        `video` message. ``queue=False`` records the job without publishing anything: the
        test publishes the message itself, when and how it wants."""
        filename = filename or path.name
        job_id = ObjectId()
        with open(path, "rb") as fh:
            fid = gridfs.GridFSBucket(self.store.db, bucket_name=VIDEOS).upload_from_stream(
                filename, fh, metadata={"owner": owner, "job_id": str(job_id)})
        jobs = Jobs(self.store, LifecycleSettings(conversions_at_once=2 if queue else 0))
        jobs.create(job_id, owner, fid, filename, "video/mp4", path.stat().st_size,
                    self.publisher)
        return messages.VideoMessage(str(job_id), str(fid), owner)

    def publish(self, queue: str, body: bytes, headers: dict | None = None) -> None:
        """Publish with the broker's confirm."""
        self.publisher.publish(queue, body, headers=headers)

    def wait_job(self, job_id: str, timeout: float = 60.0) -> dict:
        """The job once it is done or failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.jobs.get(job_id)
            if job and job["status"] in (Status.DONE, Status.FAILED):
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
        """GridFS `mp3s` files made for the job: its MP3s (not its cover picture)."""
        return [doc for doc in self.store.files(MP3S).find({"metadata.job_id": job_id})
                if not covers.is_cover(doc)]

    def video_stored(self, msg: messages.VideoMessage) -> bool:
        """Whether the job's uploaded video is still in GridFS."""
        return self.store.find_file(VIDEOS, msg.video_fid) is not None

    @contextlib.contextmanager
    def _channel(self):
        conn = connect(self.url)  # any node of a cluster's RABBITMQ_URL
        try:
            yield conn.channel()
        finally:
            conn.close()


@pytest.fixture
def pipeline_factory(stack_factory):
    """pipeline_factory(*services) -> a Pipeline over a fresh stack running those services."""
    made = []

    def make(*services: str) -> Pipeline:
        if "notification" in services and "auth" not in services:
            services = ("auth", *services)  # asked whether the owner confirmed the address
        pipeline = Pipeline(stack_factory(services=services))
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()


@pytest.fixture
def user(service_env, service_dirs) -> str:
    """An email address no other test uses, of a user with a confirmed address (create-user)."""
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    log = service_dirs.new("users") / "auth-cli.log"
    devstack.init_db(service_env, log)
    assert devstack.create_user(service_env, email, "integration password", log)
    return email
