"""Conversion bombs: a file that declares hours it should not have, a file that costs too much."""

from __future__ import annotations

import time

import pymongo
import pytest
from bson import ObjectId

from tests.e2e.api import classic_upload, mp3_files, wait_for_job
from tools.media import make_noise, make_ten_hour_flac

pytestmark = pytest.mark.security

# A retry would come within RETRY_BASE_SECONDS (1 s in tests): wait several times that.
QUIET_SECONDS = 6


@pytest.fixture(scope="module")
def bomb_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bombs")


def _attempts(stack, job_id: str) -> int:
    client = pymongo.MongoClient(stack.env["MONGODB_URI"])
    try:
        job = client[stack.env["MONGODB_DB"]]["jobs"].find_one({"_id": ObjectId(job_id)})
        return job["attempts"]
    finally:
        client.close()


def _failed_once(stack, mailsink, email: str, jwt: str, job_id: str, reason: str,
                 timeout: float) -> dict:
    """The job failed with ``reason`` after one attempt, one email said so, and nothing more."""
    job = wait_for_job(stack, jwt, job_id, timeout=timeout)
    assert job["status"] == "failed" and job["error"] == reason, job
    assert job["mp3_fid"] is None and mp3_files(stack, job_id) == []
    [mail] = mailsink.wait_for(1, to=email)
    assert mail["Subject"].endswith(f": {reason}")
    time.sleep(QUIET_SECONDS)
    assert _attempts(stack, job_id) == 1
    assert len(mailsink.messages(to=email)) == 1
    assert wait_for_job(stack, jwt, job_id)["status"] == "failed"
    return job


def test_ten_hours_of_silence_fail_within_30_seconds(stack, mailsink, bomb_dir):
    flac = make_ten_hour_flac(bomb_dir)  # about 230 KB declaring, and holding, 10 hours
    email, jwt = stack.user()
    started = time.monotonic()
    status, body = classic_upload(stack, jwt, flac)
    assert status == 202, body
    wait_for_job(stack, jwt, body["job_id"], timeout=30)
    elapsed = time.monotonic() - started
    print(f"ten-hour FLAC: upload to failed job in {elapsed:.2f} s")
    assert elapsed < 30
    _failed_once(stack, mailsink, email, jwt, body["job_id"],
                 "the video is longer than the 3-hour limit", timeout=30)


def test_a_conversion_over_its_cpu_limit_is_killed_and_failed_once(stack_factory, mailsink,
                                                                    bomb_dir):
    """300 s of noise take several seconds of processor time to encode; 1 s is allowed."""
    stack = stack_factory(FFMPEG_CPU_SECONDS="1")
    email, jwt = stack.user()
    status, body = classic_upload(stack, jwt, make_noise(bomb_dir, 300))
    assert status == 202, body
    _failed_once(stack, mailsink, email, jwt, body["job_id"],
                 "the conversion needed more than the 1 second of processor time allowed",
                 timeout=120)
