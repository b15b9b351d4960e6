"""The two lanes against real nx-27017, RabbitMQ and ffmpeg: on `video`, a job longer than
LONG_JOB_SECONDS (as probed, or as found while decoding a header that understates it) is handed
over to `video.long`, where it is converted; a short one and a stream copy are converted at
once."""

import dataclasses

import gridfs
import pytest
from bson import ObjectId

from common import messages, topology
from common.jobs import LONG_LANE, Jobs, Status
from common.store import VIDEOS
from converter.worker import ConvertHandler
from tests.integration.converter.test_convert_handler import _drain, _mp3_files
from tools.media import make_lying_mkv, make_noise

pytestmark = pytest.mark.integration

OWNER = "lanes@example.com"


def _queued(store, publisher, channel, path, options: dict | None = None):
    """A stored video and its job, dispatched as the gateway does; the `video` message."""
    job_id = ObjectId()
    with open(path, "rb") as fh:
        fid = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS).upload_from_stream(
            path.name, fh, metadata={"owner": OWNER, "job_id": str(job_id)})
    Jobs(store).create(job_id, OWNER, fid, path.name, "video/webm", path.stat().st_size,
                       publisher, options=options)
    (sent,) = _drain(channel, topology.VIDEO)
    return messages.encode(messages.VideoMessage(**sent))


def _handler(config, store, queue, long_job_seconds: float,
             long_job_bytes: int = 1 << 30) -> ConvertHandler:
    config = dataclasses.replace(config, long_job_seconds=long_job_seconds,
                                 long_job_bytes=long_job_bytes)
    return ConvertHandler(config, store, queue)


def _handed_over(store, channel, body: bytes) -> dict:
    """The job is waiting on the long lane, its message there, no result sent."""
    job = Jobs(store).get(messages.decode(messages.VideoMessage, body).job_id)
    assert job["status"] == Status.QUEUED and job["lane"] == LONG_LANE, job
    assert job["claim"] is None and job["progress"] == 0 and job["published_at"]
    assert job["attempts"] == 0  # the hand-over spent no attempt: the long lane's is the first
    assert _drain(channel, topology.VIDEO_LONG) == [
        messages.decode(messages.VideoMessage, body).__dict__]
    assert _drain(channel, topology.VIDEO) == [] and _drain(channel, topology.MP3) == []
    return job


@pytest.mark.parametrize("options, limit, long", [
    (None, 30.0, False),  # 20 s of media: converted on `video`
    (None, 15.0, True),  # handed over from the probe's length
    ({"normalize": True}, 30.0, True),  # two passes over 20 s: 40 s of decoding
])
def test_a_job_longer_than_the_limit_goes_to_the_long_lane_and_is_converted_there(
        store, converter_config, publisher, deliver, channel, media_dir, options, limit, long):
    body = _queued(store, publisher, channel, make_noise(media_dir, 20), options)
    _handler(converter_config, store, topology.VIDEO, limit).handle(deliver(body))
    job_id = messages.decode(messages.VideoMessage, body).job_id
    if not long:
        assert Jobs(store).get(job_id)["status"] == Status.DONE
        assert _drain(channel, topology.VIDEO_LONG) == []
        return
    _handed_over(store, channel, body)
    # the long lane converts it whatever its length
    _handler(converter_config, store, topology.VIDEO_LONG, limit).handle(deliver(body))
    job = Jobs(store).get(job_id)
    assert job["status"] == Status.DONE and job["duration"] == pytest.approx(20.0, abs=0.2)
    assert len(_drain(channel, topology.MP3)) == 1


def test_a_video_larger_than_the_limit_goes_to_the_long_lane_before_it_is_read(
        store, converter_config, publisher, deliver, channel, media_dir, monkeypatch):
    video = make_noise(media_dir, 20)
    body = _queued(store, publisher, channel, video)
    served = []
    monkeypatch.setattr(ConvertHandler, "_serve_video", lambda *args: served.append(args))
    _handler(converter_config, store, topology.VIDEO, 600.0,
             video.stat().st_size - 1).handle(deliver(body))
    _handed_over(store, channel, body)
    assert served == []


def test_a_header_that_understates_the_length_is_found_out_while_decoding(
        store, converter_config, publisher, deliver, channel, media_dir):
    """120 s of audio whose Matroska header says 12 s: the `video` lane stops it once it has
    decoded more than the limit, and the long lane converts all of it."""
    body = _queued(store, publisher, channel, make_lying_mkv(media_dir, 0.1, seconds=120))
    _handler(converter_config, store, topology.VIDEO, 30.0).handle(deliver(body))
    job = _handed_over(store, channel, body)
    assert _mp3_files(store, str(job["_id"])) == []  # nothing kept of the try
    _handler(converter_config, store, topology.VIDEO_LONG, 30.0).handle(deliver(body))
    job = Jobs(store).get(job["_id"])
    assert job["status"] == Status.DONE and job["duration"] == pytest.approx(120.0, abs=0.2)


def test_a_stream_copy_stays_on_its_lane(store, converter_config, publisher, deliver, channel,
                                         media):
    """Keeping an MP3's frames decodes nothing: however long, it is no long job."""
    body = _queued(store, publisher, channel, media("mkv_mp3"))
    _handler(converter_config, store, topology.VIDEO, 0.5).handle(deliver(body))
    job = Jobs(store).get(messages.decode(messages.VideoMessage, body).job_id)
    assert job["status"] == Status.DONE and job["mode"] == "copy" and "lane" not in job


def test_a_stale_video_message_of_a_job_on_the_long_lane_is_handed_over_again(
        store, converter_config, publisher, deliver, channel, media_dir):
    """A `video` message of a job already handed over (a sweep's requeue, a redelivery) is
    sent to its lane without converting; the jobs' later messages go there too."""
    body = _queued(store, publisher, channel, make_noise(media_dir, 20))
    _handler(converter_config, store, topology.VIDEO, 15.0).handle(deliver(body))
    job = _handed_over(store, channel, body)
    _handler(converter_config, store, topology.VIDEO, 1000.0).handle(deliver(body))
    _handed_over(store, channel, body)
    # the sweep's requeue of a stuck conversion, and a re-drive, use the job's lane too
    jobs = Jobs(store)
    jobs.claim(job["_id"], "token", 1)
    assert jobs.requeue(jobs.get(job["_id"]), publisher)
    assert len(_drain(channel, topology.VIDEO_LONG)) == 1 and _drain(channel, topology.VIDEO) == []
