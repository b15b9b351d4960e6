"""Upgrading from the releases that kept GridFS files in databases of their own (`videos`,
`mp3s`, bucket `fs`) and job times as dates: `python -m ops migrate`, then the sweep, and the
owner lists the job and downloads the MP3 byte for byte."""

import datetime as dt
import hashlib
import io
import json
import os

import gridfs
import pymongo
import pytest
from bson import ObjectId

from tests.e2e.storage import call, database, ops, sweep

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery"
LEGACY = ("videos", "mp3s")


@pytest.fixture
def legacy_client(stack):
    """A client of the stack's MongoDB server, the legacy databases empty before and after."""
    client = pymongo.MongoClient(stack.env["MONGODB_URI"], tz_aware=True)
    for name in LEGACY:
        client.drop_database(name)
    yield client
    for name in LEGACY:
        client.drop_database(name)
    client.close()


def test_a_job_of_the_release_with_databases_of_their_own_downloads_after_migrate(
        stack, legacy_client):
    email, jwt = stack.user(PASSWORD)
    job_id, created = ObjectId(), dt.datetime.now(dt.UTC).replace(microsecond=250000)
    mp3 = os.urandom(2 * 1024 * 1024 + 1234)  # three chunks
    metadata = {"owner": email, "job_id": str(job_id)}
    video_fid = gridfs.GridFSBucket(legacy_client["videos"]).upload_from_stream(
        "talk.mp4", io.BytesIO(b"\x00" * 5000), chunk_size_bytes=1024 * 1024,
        metadata={**metadata, "content_type": "video/mp4"})
    mp3_fid = gridfs.GridFSBucket(legacy_client["mp3s"]).upload_from_stream(
        "talk.mp3", io.BytesIO(mp3), chunk_size_bytes=1024 * 1024,
        metadata={**metadata, "video_fid": str(video_fid), "content_type": "audio/mpeg"})
    with database(stack) as db:  # the job as the first release stored it
        db["jobs"].insert_one({
            "_id": job_id, "owner": email, "video_fid": video_fid, "filename": "talk.mp4",
            "content_type": "video/mp4", "size": 5000, "status": "done", "progress": 100,
            "attempts": 1, "created_at": created, "updated_at": created, "published_at": created,
            "claim": "x", "mp3_fid": mp3_fid, "mp3_size": len(mp3), "duration": 1.0,
            "error": None, "result_published_at": created, "notified_at": created})

    done = json.loads(ops(stack, "migrate").strip().splitlines()[-1])
    assert done["files_copied"] == 2 and done["sources_deleted"] == 2, done
    assert done["legacy_databases"] == {"videos": "dropped", "mp3s": "dropped"}, done
    assert sweep(stack)["owners_adopted"] == 1  # the address's job goes to its account

    [listed] = call(stack, "GET", "/jobs", jwt).json()["jobs"]
    assert listed["job_id"] == str(job_id) and listed["status"] == "done"
    assert listed["created_at"] == created.isoformat(timespec="milliseconds")[:-6] + "Z"
    assert listed["expires_at"] is not None
    download = call(stack, "GET", f"/download?fid={mp3_fid}", jwt)
    assert download.status_code == 200
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(mp3).digest()
    part = call(stack, "GET", f"/download?fid={mp3_fid}", jwt, headers={"Range": "bytes=-1234"})
    assert part.status_code == 206 and part.content == mp3[-1234:]
