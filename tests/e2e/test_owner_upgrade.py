"""Upgrading from the release whose jobs were owned by an address: the sweep hands each job to
the account that has the address now, if it was made since that account exists; the files of
earlier or unknown accounts go."""

import time

import gridfs
import pytest
from bson import ObjectId

from common.store import MP3S, VIDEOS
from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.storage import NOTHING, call, database, owned, sweep

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery"


def _as_before(db, job_id: str, address: str) -> None:
    """Give a job and its files the owner the earlier release wrote: the address."""
    db["jobs"].update_one({"_id": ObjectId(job_id)}, {"$set": {"owner": address}})
    for bucket in (VIDEOS, MP3S):
        db[f"{bucket}.files"].update_many({"metadata.job_id": job_id},
                                          {"$set": {"metadata.owner": address}})


def _legacy_job(db, address: str, created_at: float) -> ObjectId:
    """A finished job of the earlier release, with its MP3, owned by ``address``."""
    job_id = ObjectId()
    mp3 = gridfs.GridFSBucket(db, bucket_name=MP3S).upload_from_stream(
        "old.mp3", b"\xff\xfb" * 5000, metadata={"owner": address, "job_id": str(job_id)})
    db["jobs"].insert_one({"_id": job_id, "owner": address, "status": "done", "mp3_fid": mp3,
                           "video_fid": ObjectId(), "filename": "old.mkv", "size": 1,
                           "mp3_size": 10000, "options": {}, "created_at": created_at,
                           "updated_at": created_at, "expires_at": time.time() + 3600})
    return job_id


def test_the_sweep_hands_address_owned_jobs_to_the_account_of_the_address(stack_factory,
                                                                         media):
    stack = stack_factory()
    email, jwt = stack.user(PASSWORD)
    account_id = stack.account_id(jwt)
    _, accepted = classic_upload(stack, jwt, media("mkv_mp3"))
    job = wait_for_job(stack, jwt, accepted["job_id"])
    assert job["status"] == "done", job
    with database(stack) as db:
        _as_before(db, job["job_id"], email)
        # A job made before this account existed: it belonged to an account since deleted.
        older = _legacy_job(db, email, created_at=time.time() - 86400)
        _legacy_job(db, "nobody-has-this@example.com", created_at=time.time())
    # not the account's yet
    assert call(stack, "GET", "/jobs", jwt).json() == {"jobs": [], "next": None}

    counts = sweep(stack)
    assert counts["owners_adopted"] == 1 and counts["owners_removed"] == 1, counts
    [listed] = call(stack, "GET", "/jobs", jwt).json()["jobs"]
    assert listed["job_id"] == job["job_id"]
    download = call(stack, "GET", f"/download?fid={job['mp3_fid']}", jwt)
    assert download.status_code == 200 and len(download.content) == job["mp3_size"]
    assert owned(stack, account_id)["mp3s.files"] == 2  # the MP3 and its cover picture
    for address in (email, "nobody-has-this@example.com"):
        assert owned(stack, address) == NOTHING, address
    with database(stack) as db:
        assert db["jobs"].find_one({"_id": older}) is None
    again = sweep(stack)
    assert again["owners_adopted"] == again["owners_removed"] == 0
