"""Feed the converter through the job lifecycle and its real queue, and time its answers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import gridfs
from bson import ObjectId

from common import topology
from common.broker import Publisher, PublisherPool, connect
from common.jobs import Jobs as Lifecycle
from common.settings import LifecycleSettings, MongoSettings
from common.store import CHUNK_SIZE, MP3S, VIDEOS, Store

OWNER = "bench@example.com"
# The converter measurements feed one stored video to many jobs of one owner, queued at once:
# the video is kept when a job finishes, and no fair-use limit holds the owner's jobs back.
# The converters they start get the same settings (CONVERTER_ENV).
CONVERSIONS_AT_ONCE = 1000
LIFECYCLE = LifecycleSettings(keep_source_videos=True, conversions_at_once=CONVERSIONS_AT_ONCE)
CONVERTER_ENV = {"KEEP_SOURCE_VIDEOS": "true",
                 "USER_CONVERSIONS_AT_ONCE": str(CONVERSIONS_AT_ONCE)}


class Jobs:
    """Videos in GridFS, and jobs recorded and queued through the job lifecycle, as the gateway
    does it."""

    def __init__(self, env: dict[str, str]):
        self.store = Store(MongoSettings(env["MONGODB_URI"], env["MONGODB_DB"]), 30000)
        self.lifecycle = Lifecycle(self.store, LIFECYCLE)

    def put_video(self, path: Path) -> ObjectId:
        """Store a video file in the `videos` bucket."""
        with open(path, "rb") as src:
            return gridfs.GridFSBucket(self.store.db, bucket_name=VIDEOS).upload_from_stream(
                path.name, src, chunk_size_bytes=CHUNK_SIZE,
                metadata={"owner": OWNER, "content_type": "video/mp4"})

    def new_job(self, video_fid: ObjectId, path: Path,
                publisher: Publisher | PublisherPool, options: dict | None = None) -> str:
        """Record a job for an already stored video, with its conversion options
        (``Options.to_doc()``; None: the defaults), and publish its `video` message (the
        gateway's steps after storing an upload); returns its id."""
        job_id = ObjectId()
        self.lifecycle.create(job_id, OWNER, video_fid, path.name, "video/mp4",
                              path.stat().st_size, publisher, options=options)
        return str(job_id)

    def delete(self, job_id: str) -> None:
        """Remove a job with its video and MP3, whoever owns it."""
        self.lifecycle.delete(job_id, owner=None)

    def discard_result(self, message: dict) -> None:
        """Delete the MP3 a finished job left, so repetitions do not fill the disk."""
        if message.get("mp3_fid"):
            self.store.delete_file(MP3S, message["mp3_fid"])


class QueueDriver:
    """The publisher jobs are queued with, and the `mp3` messages timestamped as they arrive.

    Between measurements it sits idle for minutes: its publisher keeps its connection alive,
    and the `mp3` messages are read on a connection opened for each wait.
    """

    def __init__(self, rabbitmq_url: str, max_attempts: int = 3):
        self.url = rabbitmq_url
        connection = connect(rabbitmq_url)
        try:
            topology.declare(connection.channel(), max_attempts)
        finally:
            connection.close()
        self.publisher = PublisherPool(rabbitmq_url, max_attempts, size=1)  # as the gateway's
        self.arrived: dict[str, tuple[float, dict]] = {}

    def _on_mp3(self, channel, method, _props, body: bytes) -> None:
        doc = json.loads(body)
        self.arrived.setdefault(doc["job_id"], (time.perf_counter(), doc))
        channel.basic_ack(method.delivery_tag)  # one not read before the wait ends stays queued

    def wait(self, job_ids: list[str], timeout: float) -> dict[str, tuple[float, dict]]:
        """Block until every job's `mp3` message arrived; {job_id: (perf_counter, message)}."""
        deadline = time.monotonic() + timeout
        connection = connect(self.url)
        try:
            connection.channel().basic_consume(topology.MP3, self._on_mp3)
            while not all(j in self.arrived for j in job_ids):
                if time.monotonic() > deadline:
                    missing = [j for j in job_ids if j not in self.arrived]
                    raise TimeoutError(f"no mp3 message within {timeout:.0f}s for {missing[:3]}")
                connection.process_data_events(time_limit=0.005)
        finally:
            connection.close()
        found = {j: self.arrived.pop(j) for j in job_ids}
        failed = [m for _, m in found.values() if not m.get("mp3_fid")]
        if failed:
            raise RuntimeError(f"conversion failed: {failed[0].get('error')}")
        return found

    def close(self) -> None:
        """Close the publisher's connection."""
        self.publisher.close()
