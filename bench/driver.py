"""Feed the converter through its real queue and job records, and time its answers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import gridfs
import pika
from bson import ObjectId

from common import messages, topology
from common.settings import MongoSettings
from common.store import CHUNK_SIZE, Store

OWNER = "bench@example.com"


class Jobs:
    """Videos in GridFS and job records, as the gateway would leave them."""

    def __init__(self, env: dict[str, str]):
        self.store = Store(MongoSettings(env["MONGODB_URI"], env["MONGODB_DB"]), 30000)

    def put_video(self, path: Path) -> ObjectId:
        """Store a video file in the `videos` bucket."""
        with open(path, "rb") as src:
            return gridfs.GridFSBucket(self.store.client["videos"]).upload_from_stream(
                path.name, src, chunk_size_bytes=CHUNK_SIZE,
                metadata={"owner": OWNER, "content_type": "video/mp4"})

    def new_job(self, video_fid: ObjectId, path: Path) -> str:
        """A queued job for an already stored video; returns its id."""
        job_id = ObjectId()
        self.store.create_job(job_id, OWNER, video_fid, path.name, "video/mp4",
                              path.stat().st_size)
        return str(job_id)

    def discard_result(self, message: dict) -> None:
        """Delete the MP3 a finished job left, so repetitions do not fill the disk."""
        if message.get("mp3_fid"):
            self.store.delete_file("mp3s", message["mp3_fid"])


class QueueDriver:
    """Publishes `video` messages and timestamps the `mp3` messages as they arrive."""

    def __init__(self, rabbitmq_url: str, max_attempts: int = 3):
        self.connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
        self.publish_channel = self.connection.channel()
        topology.declare(self.publish_channel, max_attempts)
        self.publish_channel.confirm_delivery()
        self.consume_channel = self.connection.channel()
        self.consume_channel.basic_consume(topology.MP3, self._on_mp3, auto_ack=True)
        self.arrived: dict[str, tuple[float, dict]] = {}

    def _on_mp3(self, _channel, _method, _props, body: bytes) -> None:
        doc = json.loads(body)
        self.arrived[doc["job_id"]] = (time.perf_counter(), doc)

    def publish(self, job_id: str, video_fid: ObjectId) -> None:
        """Queue one job the way the gateway does (persistent, confirmed)."""
        body = messages.encode(messages.VideoMessage(job_id, str(video_fid), OWNER))
        props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                     content_type="application/json")
        self.publish_channel.basic_publish("", topology.VIDEO, body, props, mandatory=True)

    def wait(self, job_ids: list[str], timeout: float) -> dict[str, tuple[float, dict]]:
        """Block until every job's `mp3` message arrived; {job_id: (perf_counter, message)}."""
        deadline = time.monotonic() + timeout
        while not all(j in self.arrived for j in job_ids):
            if time.monotonic() > deadline:
                missing = [j for j in job_ids if j not in self.arrived]
                raise TimeoutError(f"no mp3 message within {timeout:.0f}s for {missing[:3]}")
            self.connection.process_data_events(time_limit=0.005)
        found = {j: self.arrived.pop(j) for j in job_ids}
        failed = [m for _, m in found.values() if not m.get("mp3_fid")]
        if failed:
            raise RuntimeError(f"conversion failed: {failed[0].get('error')}")
        return found

    def close(self) -> None:
        """Close the connection."""
        if self.connection.is_open:
            self.connection.close()
