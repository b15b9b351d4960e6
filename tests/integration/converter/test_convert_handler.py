"""ConvertHandler against real nx-27017 and RabbitMQ: one MP3 per job, temp files cleaned up."""

import dataclasses
import json
import tempfile

import gridfs
import pytest
from bson import ObjectId

from common import messages
from common.errors import PermanentError
from common.jobs import Jobs, Status
from common.store import MP3S, VIDEOS
from converter.limits import Limits
from converter.worker import ConvertHandler
from tests.conftest import ffprobe_codec

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
    return list(store.files(MP3S).find({"metadata.job_id": job_id}))


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
    assert len(_mp3_files(store, msg.job_id)) == 1
    assert _job(store, msg.job_id)["attempts"] == 1


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
