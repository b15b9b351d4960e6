"""The real converter and notification processes, driven through RabbitMQ and nx-27017."""

import gridfs
import pytest

from common import messages, topology
from common.jobs import Status
from common.store import MP3S
from tests.conftest import ffprobe_codec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_converter_makes_one_mp3_per_job_and_dead_letters_garbage(pipeline_factory, media,
                                                                  user, tmp_path):
    pipe = pipeline_factory("converter")

    first = pipe.upload(media("mp4_aac51"), user, "party.mp4")
    job = pipe.wait_job(first.job_id)
    assert job["status"] == Status.DONE, job.get("error")
    (mp3,) = pipe.mp3_files(first.job_id)
    assert mp3["_id"] == job["mp3_fid"] and mp3["filename"] == "party.mp3"
    out = tmp_path / "party.mp3"
    bucket = gridfs.GridFSBucket(pipe.store.db, bucket_name=MP3S)
    out.write_bytes(bucket.open_download_stream(mp3["_id"]).read())
    assert ffprobe_codec(out) == "mp3"
    assert pipe.count(topology.MP3) == 1
    assert not pipe.video_stored(first), "the source video outlived its finished job"

    # The same message again (a redelivery after a lost ack): nothing new happens.
    pipe.publish(topology.VIDEO, messages.encode(first))
    pipe.wait_log("converter", "already finished", first.job_id)
    assert pipe.count(topology.MP3) == 1
    assert len(pipe.mp3_files(first.job_id)) == 1
    assert pipe.jobs.get(first.job_id)["attempts"] == 1

    # A malformed message is dead-lettered and does not hold up the one behind it.
    second = pipe.upload(media("mkv_mp3"), user, "next.mkv", queue=False)
    pipe.publish(topology.VIDEO, b'{"job_id": broken')
    pipe.publish(topology.VIDEO, messages.encode(second))
    assert pipe.wait_job(second.job_id)["status"] == Status.DONE
    (headers, body), = pipe.get_all(topology.dlq(topology.VIDEO))
    assert body == b'{"job_id": broken'
    assert "malformed" in headers["x-error"]
    assert pipe.count(topology.MP3) == 2
    assert pipe.count(topology.VIDEO) == 0


def test_finished_and_failed_jobs_email_their_owner_once(pipeline_factory, media, mailsink,
                                                         user):
    pipe = pipeline_factory("converter", "notification")

    good = pipe.upload(media("mov"), user, "interview.mov")
    job = pipe.wait_job(good.job_id)
    assert job["status"] == Status.DONE, job.get("error")
    (email,) = mailsink.wait_for(1, to=user)
    assert email["Subject"] == "Your MP3 is ready: interview.mp3"
    body = email.get_content()
    assert str(job["mp3_fid"]) in body and good.job_id in body
    assert f"{pipe.stack.env['PUBLIC_URL']}/download?fid={job['mp3_fid']}" in body
    pipe.wait_log("notification", "email sent", good.job_id)
    assert pipe.jobs.get(good.job_id)["notified_at"]

    # The `mp3` message again (a redelivery): no second email.
    again = messages.Mp3Message(good.job_id, good.video_fid, user, str(job["mp3_fid"]))
    pipe.publish(topology.MP3, messages.encode(again))
    pipe.wait_log("notification", "already sent", good.job_id)
    assert len(mailsink.messages(to=user)) == 1

    # A video without sound fails and the owner hears why; that is its end: no dead letter
    # (a re-drive could only fail again), nothing left queued.
    silent = pipe.upload(media("no_audio"), user, "silent.mp4")
    job = pipe.wait_job(silent.job_id)
    assert job["status"] == Status.FAILED and "no audio" in job["error"]
    emails = mailsink.wait_for(2, to=user)
    assert emails[1]["Subject"] == "Could not convert silent.mp4: the video has no audio track"
    assert pipe.get_all(topology.dlq(topology.VIDEO)) == []
    assert pipe.count(topology.VIDEO) == 0
    assert pipe.mp3_files(silent.job_id) == []
    assert not pipe.video_stored(silent), "the unconvertible video was kept"


def test_a_message_redelivered_past_the_attempt_limit_fails_its_job_without_converting(
        pipeline_factory, media, mailsink, user):
    pipe = pipeline_factory("converter", "notification")
    limit = int(pipe.stack.env["MAX_DELIVERY_ATTEMPTS"])
    crashed = pipe.upload(media("mov"), user, "crashes.mov", queue=False)
    # As if every consumer that took it so far had died while converting it.
    pipe.publish(topology.VIDEO, messages.encode(crashed), headers={"x-attempt": limit})
    job = pipe.wait_job(crashed.job_id)
    assert job["status"] == Status.FAILED
    assert job["error"].startswith(f"gave up after {limit} attempts")
    assert job["attempts"] == 0  # it was not converted again
    (email,) = mailsink.wait_for(1, to=user)
    assert email["Subject"].startswith("Could not convert crashes.mov: gave up")
    (headers, _body), = pipe.get_all(topology.dlq(topology.VIDEO))
    assert headers["x-error"].startswith("gave up")
    assert pipe.video_stored(crashed), "an outage's video is kept so it can be re-driven"
