"""Handle one `video` message: claim the job, convert, store the MP3, publish to `mp3`."""

import logging
import os
import tempfile
import time
import uuid
from pathlib import PurePath

from common import messages, topology
from common.consumer import Delivery, Handler
from common.errors import PermanentError
from common.gridio import FileMissing
from common.log import bound_job
from common.store import CONVERTING, DONE, FAILED, Store, now
from converter import ffmpeg

log = logging.getLogger(__name__)
COPY_BUFFER = 1024 * 1024
PROGRESS_INTERVAL = 1.0  # seconds between job progress writes


class ConvertHandler(Handler):
    """Turns queued videos into MP3s."""

    queue = topology.VIDEO

    def __init__(self, config, store: Store):
        self.config = config
        self.store = store

    def handle(self, delivery: Delivery) -> None:
        """Convert the message's video, exactly once per job."""
        msg = messages.decode(messages.VideoMessage, delivery.body)
        with bound_job(msg.job_id):
            job = self.store.get_job(msg.job_id)
            if job is None:
                raise PermanentError("unknown job: it was never recorded")
            if job["status"] in (DONE, FAILED):
                self._republish_if_needed(delivery, job, msg)
                return
            token = uuid.uuid4().hex
            job = self.store.claim_job(msg.job_id, token)
            if job is None:  # finished by someone else in the meantime
                return
            log.info("converting", extra={"attempt": delivery.attempt, "file": job["filename"]})
            started = time.monotonic()
            mp3 = self._convert(job, delivery)
            if not self.store.update_job(
                    msg.job_id,
                    {"status": DONE, "progress": 100, "mp3_fid": mp3["fid"],
                     "mp3_size": mp3["size"], "duration": round(mp3["duration"], 3),
                     "error": None},
                    where={"status": CONVERTING, "claim": token}):
                log.warning("job was taken over while converting; discarding this MP3")
                self.store.delete_file("mp3s", mp3["fid"])
                return
            log.info("converted", extra={"mp3_fid": str(mp3["fid"]), "seconds": round(
                time.monotonic() - started, 3), "duration": round(mp3["duration"], 3)})
            self._publish_result(delivery, msg, str(mp3["fid"]), None)

    def on_failure(self, delivery: Delivery, reason: str) -> None:
        """Mark the job failed and tell notification, unless the message is unreadable."""
        try:
            msg = messages.decode(messages.VideoMessage, delivery.body)
        except PermanentError:
            return
        with bound_job(msg.job_id):
            if self.store.update_job(msg.job_id, {"status": FAILED, "error": reason},
                                     where={"status": {"$ne": DONE}}):
                self._publish_result(delivery, msg, None, reason)

    # -- steps --------------------------------------------------------------------------------
    def _convert(self, job: dict, delivery: Delivery) -> dict:
        cfg = self.config
        with tempfile.TemporaryDirectory(prefix="converter-") as tmp:
            src = os.path.join(tmp, "source")
            dst = os.path.join(tmp, "audio.mp3")
            self._fetch_video(job["video_fid"], src)
            info = ffmpeg.probe(cfg.ffmpeg, src)
            duration = ffmpeg.convert(cfg.ffmpeg, src, dst, info, cfg.mp3_quality,
                                      cfg.ffmpeg_timeout, self._progress_writer(job["_id"]),
                                      delivery.abandon)
            size = os.path.getsize(dst)
            ffmpeg.check_output(size, duration, info,
                                lambda: ffmpeg.audio_duration(cfg.ffmpeg, src))
            fid = self._store_mp3(job, dst)
        return {"fid": fid, "size": size, "duration": duration}

    def _fetch_video(self, video_fid, path: str) -> None:
        try:
            source = self.store.open_download("videos", video_fid)
        except FileMissing:
            raise PermanentError("the uploaded video is missing from storage") from None
        with source, open(path, "wb") as out:
            while chunk := source.read(COPY_BUFFER):
                out.write(chunk)

    def _store_mp3(self, job: dict, path: str):
        name = PurePath(job["filename"] or "audio").stem + ".mp3"
        metadata = {"owner": job["owner"], "job_id": str(job["_id"]),
                    "video_fid": str(job["video_fid"]), "content_type": "audio/mpeg"}
        writer = self.store.open_upload("mp3s", name, metadata)
        try:
            with open(path, "rb") as src:
                while chunk := src.read(COPY_BUFFER):
                    writer.write(chunk)
            return writer.close()
        except BaseException:
            writer.abort()
            raise

    def _progress_writer(self, job_id):
        last = [0.0]

        def write(percent: float) -> None:
            if time.monotonic() - last[0] >= PROGRESS_INTERVAL:
                last[0] = time.monotonic()
                self.store.update_job(job_id, {"progress": round(percent, 1)},
                                      where={"status": CONVERTING})

        return write

    def _publish_result(self, delivery: Delivery, msg, mp3_fid, error) -> None:
        result = messages.Mp3Message(job_id=msg.job_id, video_fid=msg.video_fid,
                                     username=msg.username, mp3_fid=mp3_fid, error=error)
        delivery.publisher.publish(topology.MP3, messages.encode(result))
        self.store.update_job(msg.job_id, {"result_published_at": now()})

    def _republish_if_needed(self, delivery: Delivery, job: dict, msg) -> None:
        """A redelivered message for a finished job: publish its result only if it never went."""
        if job.get("result_published_at"):
            log.info("job already finished; nothing to do", extra={"status": job["status"]})
            return
        mp3_fid = str(job["mp3_fid"]) if job.get("mp3_fid") else None
        self._publish_result(delivery, msg, mp3_fid, job.get("error"))
