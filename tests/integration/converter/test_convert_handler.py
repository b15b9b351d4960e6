"""ConvertHandler against real nx-27017 and RabbitMQ: one MP3 (and cover file) per job, temp
files cleaned up."""

import dataclasses
import json
import tempfile
import time

import gridfs
import pytest
from bson import ObjectId
from mutagen.id3 import ID3

from common import covers, messages, topology
from common.errors import PermanentError
from common.jobs import Jobs, Status
from common.store import MP3S, VIDEOS
from converter import ffmpeg, worker
from converter.limits import Limits
from converter.worker import ConvertHandler
from tests.conftest import ffprobe_codec
from tools.media import FFMPEG_INTERNALS, make_lying_mkv, make_many_channels

pytestmark = pytest.mark.integration

OWNER = "viewer@example.com"


@pytest.fixture
def tmpdir_env(tmp_path, monkeypatch):
    """TMPDIR pointing at an empty directory the test can inspect."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setenv("TMPDIR", str(directory))
    monkeypatch.setattr(tempfile, "tempdir", None)  # forget the cached default
    assert tempfile.gettempdir() == str(directory)
    return directory


def _queued_job(store, publisher, channel, path, filename: str) -> messages.VideoMessage:
    """Store the video and record its job as the gateway does; the `video` message it sent."""
    job_id = ObjectId()
    with open(path, "rb") as fh:
        bucket = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS)
        fid = bucket.upload_from_stream(filename, fh, metadata={"owner": OWNER,
                                                                "job_id": str(job_id)})
    Jobs(store).create(job_id, OWNER, fid, filename, "video/mp4", path.stat().st_size,
                       publisher)
    (sent,) = _drain(channel, "video")
    msg = messages.VideoMessage(**sent)
    assert msg == messages.VideoMessage(str(job_id), str(fid), OWNER)
    return msg


def _drain(channel, queue: str) -> list[dict]:
    found = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return found
        found.append(json.loads(body))


def _mp3_files(store, job_id: str) -> list[dict]:
    return [doc for doc in store.files(MP3S).find({"metadata.job_id": job_id})
            if not covers.is_cover(doc)]


def _cover_files(store, job_id: str) -> list[dict]:
    return [doc for doc in store.files(MP3S).find({"metadata.job_id": job_id})
            if covers.is_cover(doc)]


def _video_stored(store, msg) -> bool:
    return store.find_file(VIDEOS, msg.video_fid) is not None


def _job(store, job_id: str) -> dict:
    return Jobs(store).get(job_id)


def test_good_video_becomes_one_mp3_and_one_result_message(
        media, store, converter_config, publisher, deliver, channel, tmpdir_env, tmp_path):
    msg = _queued_job(store, publisher, channel, media("mp4_aac51"), "Family Trip.final.mp4")
    handler = ConvertHandler(converter_config, store)
    handler.handle(deliver(messages.encode(msg)))

    job = _job(store, msg.job_id)
    assert job["status"] == Status.DONE and job["progress"] == 100 and job["attempts"] == 1
    assert abs(job["duration"] - 3.0) <= 0.2
    assert job["error"] is None and job["result_published_at"]
    (mp3,) = _mp3_files(store, msg.job_id)
    assert mp3["_id"] == job["mp3_fid"] and mp3["length"] == job["mp3_size"]
    assert mp3["filename"] == "Family Trip.final.mp3"
    assert mp3["metadata"]["owner"] == OWNER
    out = tmp_path / "got.mp3"
    bucket = gridfs.GridFSBucket(store.db, bucket_name=MP3S)
    out.write_bytes(bucket.open_download_stream(job["mp3_fid"]).read())
    assert ffprobe_codec(out) == "mp3"
    # The cover is a file of its own, and still embedded in the MP3.
    (picture,) = _cover_files(store, msg.job_id)
    assert picture["_id"] == job["cover_fid"] and picture["length"] == job["cover"]["size"]
    assert picture["filename"] == "Family Trip.final.jpg"
    assert picture["metadata"] == {"owner": OWNER, "job_id": msg.job_id, "kind": "cover",
                                   "content_type": "image/jpeg"}
    (apic,) = ID3(out).getall("APIC")
    assert covers.load(store, job["cover_fid"]) == apic.data
    assert _drain(channel, "mp3") == [{"job_id": msg.job_id, "video_fid": msg.video_fid,
                                       "owner": OWNER, "mp3_fid": str(job["mp3_fid"]),
                                       "error": None}]
    assert not _video_stored(store, msg), "the source video outlived its finished job"
    assert list(tmpdir_env.iterdir()) == []


def test_redelivered_message_for_a_done_job_does_nothing(
        media, store, converter_config, publisher, deliver, channel, tmpdir_env):
    msg = _queued_job(store, publisher, channel, media("mkv_mp3"), "clip.mkv")
    handler = ConvertHandler(converter_config, store)
    handler.handle(deliver(messages.encode(msg)))
    assert len(_drain(channel, "mp3")) == 1
    handler.handle(deliver(messages.encode(msg), redelivered=True, attempt=2))
    assert _drain(channel, "mp3") == []
    assert len(_mp3_files(store, msg.job_id)) == 1 and len(_cover_files(store, msg.job_id)) == 1
    assert _job(store, msg.job_id)["attempts"] == 1


def test_a_job_taken_over_meanwhile_keeps_neither_this_mp3_nor_its_cover(
        media, store, converter_config, publisher, deliver, channel, tmpdir_env, monkeypatch):
    msg = _queued_job(store, publisher, channel, media("mov"), "clip.mov")
    handler = ConvertHandler(converter_config, store)
    real_finish = handler.jobs.finish

    def taken_over(job, token, *args, **kwargs):
        assert len(_mp3_files(store, msg.job_id)) == len(_cover_files(store, msg.job_id)) == 1
        store.jobs.update_one({"_id": ObjectId(msg.job_id)}, {"$set": {"claim": "another"}})
        return real_finish(job, token, *args, **kwargs)

    monkeypatch.setattr(handler.jobs, "finish", taken_over)
    handler.handle(deliver(messages.encode(msg)))
    assert _job(store, msg.job_id)["status"] == Status.CONVERTING  # the other converter's
    assert store.files(MP3S).find_one({"metadata.job_id": msg.job_id}) is None
    assert _drain(channel, "mp3") == [] and list(tmpdir_env.iterdir()) == []


def test_done_job_whose_result_never_went_out_is_published_once(
        media, store, converter_config, publisher, deliver, channel, tmpdir_env):
    msg = _queued_job(store, publisher, channel, media("mkv_mp3"), "clip.mkv")
    handler = ConvertHandler(converter_config, store)
    handler.handle(deliver(messages.encode(msg)))
    _drain(channel, "mp3")
    store.jobs.update_one({"_id": ObjectId(msg.job_id)},
                          {"$set": {"result_published_at": None}})  # as after a crash
    handler.handle(deliver(messages.encode(msg), redelivered=True))
    (result,) = _drain(channel, "mp3")
    assert result["mp3_fid"] == str(_job(store, msg.job_id)["mp3_fid"])
    assert result["error"] is None  # the video is gone by now: still no error
    assert len(_mp3_files(store, msg.job_id)) == 1


@pytest.mark.parametrize("kind, reason", [("no_audio", "no audio track"),
                                          ("text", "not a media file")])
def test_unconvertible_video_fails_permanently_and_cleans_up(
        media, store, converter_config, publisher, deliver, channel, tmpdir_env, kind, reason):
    msg = _queued_job(store, publisher, channel, media(kind), "bad.mp4")
    handler = ConvertHandler(converter_config, store)
    delivery = deliver(messages.encode(msg))
    with pytest.raises(PermanentError, match=reason):
        handler.handle(delivery)
    assert list(tmpdir_env.iterdir()) == []
    assert _mp3_files(store, msg.job_id) == []

    # what the loop does next: the job's end is recorded, so no dead letter is needed
    assert handler.on_failure(delivery, f"the video has {reason}", permanent=True) is True
    job = _job(store, msg.job_id)
    assert job["status"] == Status.FAILED and reason in job["error"]
    (result,) = _drain(channel, "mp3")
    assert result["mp3_fid"] is None and reason in result["error"]
    assert not _video_stored(store, msg), "the unconvertible video was kept"


def test_the_configured_limits_reach_ffmpeg(media, store, converter_config, publisher, deliver,
                                            channel, tmpdir_env):
    config = dataclasses.replace(converter_config, limits=Limits(media_seconds=2))
    msg = _queued_job(store, publisher, channel, media("mov"), "three-seconds.mov")
    with pytest.raises(PermanentError, match="the video is longer than the 2-second limit"):
        ConvertHandler(config, store).handle(deliver(messages.encode(msg)))
    assert list(tmpdir_env.iterdir()) == []
    assert _mp3_files(store, msg.job_id) == []


def test_a_deleted_job_is_skipped_quietly_and_a_malformed_message_is_permanent(
        media, store, converter_config, publisher, deliver, channel, tmpdir_env):
    handler = ConvertHandler(converter_config, store)
    unknown = messages.VideoMessage(str(ObjectId()), str(ObjectId()), OWNER)
    handler.handle(deliver(messages.encode(unknown)))  # acknowledged: nothing to convert
    deleted = _queued_job(store, publisher, channel, media("mov"), "deleted.mov")
    assert Jobs(store).delete(deleted.job_id, OWNER)
    handler.handle(deliver(messages.encode(deleted)))
    assert _mp3_files(store, deleted.job_id) == [] and _job(store, deleted.job_id) is None
    bad = deliver(b"{oops")
    with pytest.raises(PermanentError, match="not JSON"):
        handler.handle(bad)
    # nothing to record or announce: the message goes to the dead-letter queue
    assert handler.on_failure(bad, "malformed", permanent=True) is False
    assert _drain(channel, "mp3") == []
    assert list(tmpdir_env.iterdir()) == []


def test_missing_upload_is_permanent(media, store, converter_config, publisher, deliver,
                                     channel, tmpdir_env):
    msg = _queued_job(store, publisher, channel, media("mov"), "gone.mov")
    gridfs.GridFSBucket(store.db, bucket_name=VIDEOS).delete(ObjectId(msg.video_fid))
    with pytest.raises(PermanentError, match="missing from storage"):
        ConvertHandler(converter_config, store).handle(deliver(messages.encode(msg)))
    assert list(tmpdir_env.iterdir()) == []


def test_audio_with_more_channels_than_supported_fails_saying_so(
        store, converter_config, publisher, deliver, channel, tmpdir_env, tmp_path):
    """A real 64-channel WAV. The job's error used to be ffmpeg's last line: "ffmpeg could not
    convert this file ([out#0/mp3 @ 0x55f7…] Nothing was written into output file, …)"."""
    msg = _queued_job(store, publisher, channel, make_many_channels(tmp_path / "media", 64),
                      "multitrack.wav")
    handler = ConvertHandler(converter_config, store)
    delivery = deliver(messages.encode(msg))
    said = ("the audio has 64 channels; at most 24 are supported: mix it down to stereo "
            "before uploading")
    with pytest.raises(PermanentError) as failed:
        handler.handle(delivery)
    assert str(failed.value) == said and failed.value.kind == "not_media"
    assert handler.on_failure(delivery, str(failed.value), permanent=True) is True
    job = _job(store, msg.job_id)
    assert job["status"] == Status.FAILED and job["error"] == said
    assert not FFMPEG_INTERNALS.search(job["error"])
    (result,) = _drain(channel, "mp3")
    assert result["error"] == said and result["mp3_fid"] is None
    assert _mp3_files(store, msg.job_id) == [] and list(tmpdir_env.iterdir()) == []


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_progress_keeps_moving_when_the_header_lies_about_the_length(
        store, converter_config, publisher, deliver, channel, tmpdir_env, media_dir,
        monkeypatch, factor):
    """600 s of audio in an MKV whose Duration says half or twice that. By time alone the
    recorded progress reached 99 half way and stuck there (0.5), or crawled to 50 and then
    jumped to 100 (2.0). Now it follows the bytes read: monotonic, spread over the whole
    conversion, 99 only at its end, then 100."""
    src = make_lying_mkv(media_dir, factor)
    msg = _queued_job(store, publisher, channel, src, "lying.mkv")
    monkeypatch.setattr(worker, "PROGRESS_INTERVAL", 0.0)  # record every report of ffmpeg's
    # ... and have many: at 0.5 s, a 2 s conversion gives four, whose last below 99 may be 73
    monkeypatch.setattr(ffmpeg, "PROGRESS_PERIOD", 0.1)
    recorded: list[tuple[float, float]] = []
    real_progress = Jobs.progress

    def progress(jobs, job_id, token, percent):
        recorded.append((time.monotonic(), round(percent, 1)))
        return real_progress(jobs, job_id, token, percent)

    monkeypatch.setattr(Jobs, "progress", progress)
    # 600 s of media: a job of the long lane (its own tests: test_lane_handover.py)
    ConvertHandler(converter_config, store, topology.VIDEO_LONG).handle(
        deliver(messages.encode(msg)))
    job = _job(store, msg.job_id)
    assert job["status"] == Status.DONE and job["progress"] == 100
    assert job["duration"] == pytest.approx(600.0, abs=0.2)
    values = [value for _, value in recorded]
    print(f"header says {factor:g}x the length; progress recorded: {values}")
    assert values == sorted(values) and max(values) == 99.0, values
    start, end = recorded[0][0], recorded[-1][0]
    near_end = next(at for at, value in recorded if value >= 98.5)
    assert near_end - start >= 0.75 * (end - start), values  # not at 99 for much of the job
    assert max(value for value in values if value < 98.5) >= 75, values  # nor crawling to 50
    assert len({value for value in values if value < 98.5}) >= 4, values
