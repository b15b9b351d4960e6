"""A job deleted while the converter holds it, at each step: nothing is stored, nothing is
announced, and the message is settled without a retry or a dead letter."""

import json

import gridfs
import pytest
from bson import ObjectId

from common import messages
from common.jobs import Jobs
from common.store import MP3S, VIDEOS
from converter import worker
from converter.worker import ConvertHandler

pytestmark = pytest.mark.integration

OWNER = "viewer@example.com"


def queued(store, publisher, channel, path) -> messages.VideoMessage:
    """A stored video and its job, as the gateway leaves them; the `video` message."""
    job_id = ObjectId()
    with open(path, "rb") as fh:
        fid = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS).upload_from_stream(
            path.name, fh, metadata={"owner": OWNER, "job_id": str(job_id)})
    Jobs(store).create(job_id, OWNER, fid, path.name, "video/quicktime", path.stat().st_size,
                       publisher)
    method, _props, body = channel.basic_get("video", auto_ack=True)
    assert method is not None
    return messages.VideoMessage(**json.loads(body))


def nothing_left(store, channel, msg) -> None:
    assert Jobs(store).get(msg.job_id) is None
    assert list(store.files(MP3S).find({"metadata.job_id": msg.job_id})) == []
    assert store.find_file(VIDEOS, msg.video_fid) is None
    assert channel.basic_get("mp3", auto_ack=True)[0] is None  # no email will be sent


@pytest.mark.parametrize("moment", ["claimed", "probed", "converted", "stored"])
def test_a_job_deleted_while_held_is_dropped_quietly(media, store, converter_config, publisher,
                                                     deliver, channel, monkeypatch, moment):
    msg = queued(store, publisher, channel, media("mov"))
    handler = ConvertHandler(converter_config, store)
    jobs = Jobs(store)

    def delete_then(original):
        def wrapped(*args, **kwargs):
            result = original(*args, **kwargs)
            assert jobs.delete(msg.job_id, OWNER)
            return result
        return wrapped

    if moment == "claimed":  # before the video is read: it is already gone
        monkeypatch.setattr(handler.jobs, "claim", delete_then(handler.jobs.claim))
    elif moment == "probed":  # while ffmpeg runs: progress notices
        monkeypatch.setattr(worker.ffmpeg.FFmpeg, "probe",
                            delete_then(worker.ffmpeg.FFmpeg.probe))
    elif moment == "converted":  # after ffmpeg, before the MP3 is stored
        monkeypatch.setattr(worker.ffmpeg, "check_output",
                            delete_then(worker.ffmpeg.check_output))
    else:  # the MP3 and its cover stored, the job not finished: finish refuses
        monkeypatch.setattr(worker.covers, "save", delete_then(worker.covers.save))
    handler.handle(deliver(messages.encode(msg)))  # returns: the message is acknowledged
    nothing_left(store, channel, msg)
