"""DELETE /jobs/<id>: the job, its video, its MP3 and its cover go; a conversion in progress
stops."""

import os
import time

import pytest
from bson import ObjectId

from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.storage import MP3S, VIDEOS, call, chunks, files, wait_until
from tools.media import make_noise

pytestmark = pytest.mark.e2e


def test_delete_removes_the_job_its_video_and_its_mp3_for_the_owner_only(stack_factory,
                                                                          media):
    stack = stack_factory(KEEP_SOURCE_VIDEOS="true")  # so that the video is there to delete
    email, jwt = stack.user()
    _, other = stack.user()
    _, accepted = classic_upload(stack, jwt, media("mov"))
    _, kept = classic_upload(stack, jwt, media("mkv_mp3"))
    job = wait_for_job(stack, jwt, accepted["job_id"])
    assert wait_for_job(stack, jwt, kept["job_id"])["status"] == "done"
    job_id, video_fid, mp3_fid = job["job_id"], ObjectId(job["video_fid"]), ObjectId(
        job["mp3_fid"])
    assert files(stack, VIDEOS, _id=video_fid) and files(stack, MP3S, _id=mp3_fid)
    assert len(files(stack, MP3S, **{"metadata.job_id": job_id})) == 2  # the MP3 and its cover

    # Someone else cannot delete it, nor learn that it exists.
    for who in (other, None):
        resp = call(stack, "DELETE", f"/jobs/{job_id}", who)
        assert resp.status_code == (404 if who else 401), resp.text
        assert resp.json()["error"]
    assert call(stack, "GET", f"/jobs/{job_id}", jwt).json()["status"] == "done"
    assert files(stack, VIDEOS, _id=video_fid) and files(stack, MP3S, _id=mp3_fid)

    resp = call(stack, "DELETE", f"/jobs/{job_id}", jwt)
    assert resp.status_code == 204 and resp.content == b""
    assert call(stack, "GET", f"/jobs/{job_id}", jwt).status_code == 404
    assert [j["job_id"] for j in call(stack, "GET", "/jobs", jwt).json()["jobs"]] == [
        kept["job_id"]]
    assert files(stack, VIDEOS, _id=video_fid) == [] and chunks(stack, VIDEOS, video_fid) == 0
    assert files(stack, MP3S, _id=mp3_fid) == [] and chunks(stack, MP3S, mp3_fid) == 0
    assert files(stack, MP3S, **{"metadata.job_id": job_id}) == []  # the cover went too
    resp = call(stack, "GET", f"/download?fid={mp3_fid}", jwt)
    assert resp.status_code == 404 and resp.json() == {"error": "no such file"}

    # Twice is harmless: 404, and the owner's other job is untouched.
    again = call(stack, "DELETE", f"/jobs/{job_id}", jwt)
    assert again.status_code == 404 and again.json() == {"error": "no such job"}
    for bad in ("not-an-id", str(ObjectId())):
        assert call(stack, "DELETE", f"/jobs/{bad}", jwt).status_code == 404
    other_job = call(stack, "GET", f"/jobs/{kept['job_id']}", jwt).json()
    assert other_job["status"] == "done"
    download = call(stack, "GET", f"/download?fid={other_job['mp3_fid']}", jwt)
    assert download.status_code == 200 and len(download.content) == other_job["mp3_size"]
    assert len(files(stack, VIDEOS, **{"metadata.owner": stack.account_id(jwt)})) == 1


def ffmpeg_children(pid: int) -> list[int]:
    """The ffmpeg processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv0 = fh.read().split(b"\0")[0]
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == pid and b"ffmpeg" in os.path.basename(argv0):
            found.append(int(entry))
    return found


def test_deleting_a_job_being_converted_stops_ffmpeg_stores_nothing_and_sends_no_email(
        stack, mailsink, media, media_dir):
    email, jwt = stack.user()
    long_input = make_noise(media_dir, 1200)  # 20 minutes of noise: seconds to convert
    status, accepted = classic_upload(stack, jwt, long_input)
    assert status == 202, accepted
    job_id = accepted["job_id"]
    converter = stack.processes["converter"]
    job = wait_for_job(stack, jwt, job_id, statuses=("converting",), progress=1, timeout=60)
    assert job["progress"] < 90, f"the conversion went too fast to be interrupted: {job}"
    [ffmpeg] = wait_until(lambda: ffmpeg_children(converter.pid), what="ffmpeg running")

    deleted_at = time.monotonic()
    assert call(stack, "DELETE", f"/jobs/{job_id}", jwt).status_code == 204
    wait_until(lambda: not os.path.exists(f"/proc/{ffmpeg}") or ffmpeg not in
               ffmpeg_children(converter.pid), timeout=10, what="ffmpeg stopped")
    stopped_after = time.monotonic() - deleted_at
    wait_until(lambda: "stopped and discarded" in converter.log_text(), timeout=10,
               what="the converter noticing the deletion")
    print(f"ffmpeg stopped {stopped_after:.2f}s after DELETE (progress was "
          f"{job['progress']}%)")
    assert stopped_after < 5

    # The converter is free at once: a short clip goes through.
    _, short = classic_upload(stack, jwt, media("mov"))
    assert wait_for_job(stack, jwt, short["job_id"], timeout=30)["status"] == "done"
    [mail] = mailsink.wait_for(1, to=email)
    time.sleep(1)  # an email about the deleted job would have come by now
    assert [m["X-Mp3converter-Job"] for m in mailsink.messages(to=email)] == [short["job_id"]]
    assert mail["X-Mp3converter-Job"] == short["job_id"]
    assert files(stack, MP3S, **{"metadata.job_id": job_id}) == []
    assert files(stack, VIDEOS, **{"metadata.job_id": job_id}) == []
    assert chunks(stack, VIDEOS, ObjectId(accepted["video_fid"])) == 0
    assert call(stack, "GET", f"/jobs/{job_id}", jwt).status_code == 404
    assert [j["job_id"] for j in call(stack, "GET", "/jobs", jwt).json()["jobs"]] == [
        short["job_id"]]
