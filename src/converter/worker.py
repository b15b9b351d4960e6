"""Handle one `video` message: claim the job, convert, store the MP3 and its cover picture,
finish the job.

Two lanes: one handler consumes `video`, another `video.long`, side by side in each converter.
On `video`, a job whose video is larger than LONG_JOB_BYTES (before it is fetched), or whose
passes would decode more than LONG_JOB_SECONDS of media (known from the probe, or found while
decoding when its container understated its length) is handed over to `video.long` instead, so
a short job never waits behind a long one."""

import dataclasses
import logging
import os
import tempfile
import time
import uuid
from pathlib import PurePath

import pymongo.errors

from common import covers, messages, metrics, topology
from common.consumer import Delivery, Handler
from common.errors import PermanentError, ProcessingError
from common.gridio import FileMissing, GridReader
from common.jobs import LONG_LANE, Cancelled, Jobs, Status
from common.log import bound_job
from common.options import TAGS, Options
from common.store import MP3S, VIDEOS, Store
from converter import chapters, cover, ffmpeg, id3, plan
from converter.ffmpeg import LongJob
from converter.source import Served
from converter.upload import MP3Upload

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 1.0  # seconds between job progress writes (and checks for cancellation)


def reason_class(error: BaseException | None) -> str:
    """The fixed class of a conversion's failure, for the metrics (never its message)."""
    if isinstance(error, ProcessingError) and error.kind != "internal":
        return error.kind
    if isinstance(error, (pymongo.errors.PyMongoError, FileMissing, OSError)) and not isinstance(
            error, ProcessingError):
        return "storage"
    return "internal"


class ConvertHandler(Handler):
    """Turns queued videos into MP3s."""

    def __init__(self, config, store: Store, queue: str = topology.VIDEO):
        self.config = config
        self.store = store
        self.jobs = Jobs(store, config.lifecycle)
        self.queue = queue  # topology.VIDEO or topology.VIDEO_LONG

    def handle(self, delivery: Delivery) -> None:
        """Convert the message's video, exactly once per job."""
        msg = messages.decode(messages.VideoMessage, delivery.body)
        with bound_job(msg.job_id):
            job = self.jobs.get(msg.job_id)
            if job is None:
                log.info("the job was deleted; nothing to do")
                return
            if job["status"] not in (Status.QUEUED, Status.CONVERTING):
                self.jobs.republish_result(job, delivery.publisher)
                return
            token = uuid.uuid4().hex
            job = self.jobs.claim(msg.job_id, token, delivery.attempt)
            if job is None:  # finished or deleted by someone else in the meantime
                return
            if self.queue == topology.VIDEO and job.get("lane") == LONG_LANE:
                self._to_long_lane(job, token, delivery, "already handed over")
                return
            asked = {key: value for key, value in (job.get("options") or {}).items()
                     if value not in (None, False) and key not in TAGS}
            log.info("converting", extra={"attempt": delivery.attempt, "file": job["filename"],
                                          "options": asked})
            started = time.monotonic()
            try:
                with metrics.JOBS_IN_PROGRESS.track_inprogress():
                    mp3 = self._convert(job, token, delivery)
            except LongJob as exc:
                self._to_long_lane(job, token, delivery, str(exc))
                return
            except Cancelled:
                log.info("the job was deleted while converting; stopped and discarded")
                metrics.CONVERSIONS.labels("cancelled", "").inc()
                return
            except Exception:
                # Deleted before its progress was first recorded: its video went with it, which
                # is no failure to retry or dead-letter.
                if self.jobs.get(job["_id"]) is None:
                    log.info("the job was deleted while converting; stopped and discarded")
                    metrics.CONVERSIONS.labels("cancelled", "").inc()
                    return
                raise
            if not self.jobs.finish(job, token, mp3["fid"], mp3["size"], mp3["duration"],
                                    delivery.publisher, mp3["details"]):
                log.warning("job was deleted or taken over while converting; discarding this MP3")
                self.jobs.remove_outputs({"mp3_fid": mp3["fid"], **mp3["details"]})
                metrics.CONVERSIONS.labels("cancelled", "").inc()
                return
            metrics.CONVERSIONS.labels("done", "").inc()
            metrics.CONVERSION_DURATION.observe(time.monotonic() - started)
            metrics.CONVERTED_MEDIA_SECONDS.inc(mp3["duration"])
            metrics.CONVERSION_MODE.labels(mp3["details"]["mode"]).inc()
            log.info("converted", extra={"mp3_fid": str(mp3["fid"]), "seconds": round(
                time.monotonic() - started, 3), "duration": round(mp3["duration"], 3),
                "mp3_chunks_stored_while_writing": mp3["streamed"], **mp3["details"]})

    def on_failure(self, delivery: Delivery, reason: str, permanent: bool) -> bool:
        """Mark the job failed and tell notification; False for an unreadable message (no job
        to fail: it goes to the dead-letter queue)."""
        try:
            msg = messages.decode(messages.VideoMessage, delivery.body)
        except PermanentError:
            return False
        with bound_job(msg.job_id):
            if self.jobs.fail(msg.job_id, reason, delivery.publisher, permanent=permanent):
                metrics.CONVERSIONS.labels("failed", reason_class(delivery.error)).inc()
        return True  # failed now, or already finished or deleted by an earlier delivery

    def on_outcome(self, delivery: Delivery, outcome: str) -> None:
        """Count a retry scheduled or a message dead-lettered, by the class of its cause."""
        metrics.CONVERSIONS.labels(outcome, reason_class(delivery.error)).inc()

    def _to_long_lane(self, job: dict, token: str, delivery: Delivery, why: str) -> None:
        if self.jobs.to_long_lane(job, token, delivery.publisher):
            log.info("handed over to the long lane", extra={"queue": topology.VIDEO_LONG,
                                                             "reason": why})

    def _lane_seconds(self, recipe: plan.Plan) -> float | None:
        """Media seconds one pass of this job may decode here: LONG_JOB_SECONDS shared by its
        passes on `video`; None (no limit) on the long lane, and for a stream copy, which
        decodes nothing."""
        if self.queue != topology.VIDEO or recipe.copy:
            return None
        return self.config.long_job_seconds / (2 if recipe.normalize else 1)

    # -- steps --------------------------------------------------------------------------------
    def _convert(self, job: dict, token: str, delivery: Delivery) -> dict:
        """Serve the video, probe and check, plan, (measure the loudness,) convert and check the MP3
        while the cover is taken alongside, tag and store the MP3 and its cover: the MP3's
        record."""
        options = Options.from_doc(job.get("options"), job.get("filename"))
        progress = self._progress_writer(job, token)
        run = self._ffmpeg(delivery)
        if self.queue == topology.VIDEO and (job.get("size") or 0) > self.config.long_job_bytes:
            raise LongJob(f"{job['size']} bytes of video to read")
        with tempfile.TemporaryDirectory(prefix="converter-") as tmp, \
                self._serve_video(job["video_fid"], tmp) as src:
            dst, picture, marks = (os.path.join(tmp, name) for name in (
                "audio.mp3", "cover.jpg", "chapters.txt"))
            info = run.probe(src)
            ffmpeg.check_media(info, run.limits)
            recipe = plan.make(info, options, self.config.mp3_quality)
            lane_seconds = self._lane_seconds(recipe)
            if lane_seconds is not None and info.duration is not None and (
                    recipe.expected(info.duration) > lane_seconds):
                raise LongJob(f"{recipe.expected(info.duration):.0f} s of media to convert")
            run = dataclasses.replace(run, lane_seconds=lane_seconds)
            loudness = (run.measure_loudness(src, info, recipe, progress)
                        if recipe.normalize else None)
            taking = run.cover_alongside(src, recipe.cover_at, picture)

            def tag_of(parts: list) -> bytes:
                return id3.build(options.title, options.artist, options.album, taking.picture,
                                 parts)

            # The MP3 goes into GridFS while ffmpeg writes it, behind the tag it will most
            # likely have: the cover's, without chapters (converter/upload.py).
            with self._mp3_upload(job, dst, lambda: tag_of([]) if taking.taken.is_set()
                                  else None) as upload:
                with taking:
                    duration = run.convert(src, dst, info, recipe, progress, loudness, marks)
                    size = os.path.getsize(dst)
                    ffmpeg.check_output(size, duration, info, recipe,
                                        lambda: run.audio_duration(src))
                jpeg = taking.picture
                parts = chapters.fit(chapters.parse(_text(marks)), duration)
                tag = tag_of(parts)
                self.jobs.progress(job["_id"], token, 99.0)  # still wanted? (raises Cancelled)
                fid = upload.finish(tag)
        cover_fid = self._store_cover(job, jpeg, fid) if jpeg else None
        width, height = cover.dimensions(jpeg) if jpeg else (0, 0)
        return {"fid": fid, "size": len(tag) + size, "duration": duration,
                "streamed": upload.streamed, "details": {
            "mode": "copy" if recipe.copy else "encode",
            "bitrate": round(size * 8 / duration / 1000) if duration else None,
            "cover": {"width": width, "height": height, "size": len(jpeg)} if jpeg else None,
            "cover_fid": cover_fid, "chapters": len(parts)}}

    def _ffmpeg(self, delivery: Delivery) -> ffmpeg.FFmpeg:
        """ffmpeg for this job: the configured binary, limits and deadline; stopped when the
        delivery is abandoned."""
        cfg = self.config
        return ffmpeg.FFmpeg(cfg.ffmpeg, cfg.limits, cfg.ffmpeg_timeout, delivery.abandon)

    def _serve_video(self, video_fid, tmp: str) -> Served:
        """The uploaded video, read by the job's ffmpeg runs straight out of GridFS
        (``converter.source``): no copy on disk, the transfer overlapping the decoding."""
        stored = self.store.find_file(VIDEOS, video_fid)
        if stored is None:
            raise PermanentError("the uploaded video is missing from storage", kind="storage")
        return Served(lambda: GridReader(self.store.db, VIDEOS, stored), stored["length"], tmp)

    def _mp3_upload(self, job: dict, path: str, guess) -> MP3Upload:
        """The MP3 into GridFS (its ID3 tag, then ffmpeg's audio frames in ``path``), stored
        while ffmpeg writes it once ``guess()`` tells the tag."""
        name = PurePath(job["filename"] or "audio").stem + ".mp3"
        metadata = {"owner": job["owner"], "job_id": str(job["_id"]),
                    "video_fid": str(job["video_fid"]), "content_type": "audio/mpeg"}
        return MP3Upload(self.store.open_upload(MP3S, name, metadata), path, guess)

    def _store_cover(self, job: dict, jpeg: bytes, mp3_fid):
        """The cover picture as a file of its own (``common.covers``); the MP3 just stored
        goes too when it cannot be stored."""
        try:
            return covers.save(self.store, job, jpeg)
        except BaseException:
            self.store.delete_file(MP3S, mp3_fid)
            raise

    def _progress_writer(self, job: dict, token: str):
        """Record progress about once a second (the first a second in: a shorter job writes
        none but its 99 %), never less than before; raises Cancelled (stopping ffmpeg) when
        the job was deleted meanwhile."""
        last, best = [time.monotonic()], [0.0]

        def write(percent: float) -> None:
            best[0] = max(best[0], percent)
            if time.monotonic() - last[0] >= PROGRESS_INTERVAL:
                last[0] = time.monotonic()
                self.jobs.progress(job["_id"], token, best[0])

        return write


def _text(path: str, limit: int = 1 << 20) -> str:
    """A small text file ffmpeg wrote ("" when it wrote none)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as src:
            return src.read(limit)
    except FileNotFoundError:
        return ""
