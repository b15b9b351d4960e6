"""`python -m ops migrate` against nx-27017, run as an operator runs it: GridFS files of earlier
releases (databases `videos` and `mp3s`, bucket `fs`) move into today's buckets byte for byte,
a run killed at any step loses nothing and the next one finishes, job documents of earlier
releases become readable, and covers they kept only in the MP3 become files of their own. The
legacy database names are fixed: these tests empty them before and after, and nothing else uses
them."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import secrets
import subprocess
import sys

import gridfs
import pymongo
import pytest
from bson import ObjectId

from common import covers
from common.gridio import GridReader, GridWriter
from common.jobs import Jobs
from common.settings import MongoSettings
from common.store import CHUNK_SIZE, MP3S, VIDEOS, Store
from converter import id3
from gateway.jobs import job_json
from tools import devstack

pytestmark = pytest.mark.integration

LEGACY = {"videos": VIDEOS, "mp3s": MP3S}
SMALL_CHUNK = 64 * 1024

# `python -m ops migrate`, killed with SIGKILL the COUNTth time it reaches checkpoint EVENT
# (ops.migrate.checkpoint); its peak memory over what it had before migrating goes to stderr.
DRIVER = """
import json, os, signal, sys
from ops import migrate
from ops.__main__ import cli
event, count = sys.argv[1], int(sys.argv[2])
seen = []
def stop(name):
    if name == event:
        seen.append(name)
        if len(seen) == count:
            os.kill(os.getpid(), signal.SIGKILL)
def kib(field):
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith(field)).split()[1])
migrate.checkpoint = stop
before = kib("VmRSS:")
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak starts again from here
try:
    cli(["migrate"])
finally:
    print(json.dumps({"rss_growth_kib": kib("VmHWM:") - before}), file=sys.stderr)
"""


@pytest.fixture
def env(mongodb_uri, module_vhost):
    """ops' environment for a fresh MONGODB_DB, with the legacy databases empty (and a vhost
    of the test run's broker, whose queues migrate finds as they should be)."""
    client = pymongo.MongoClient(mongodb_uri, tz_aware=True)
    values = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
              "MONGODB_URI": mongodb_uri, "MONGODB_DB": f"mp3test_mig_{secrets.token_hex(4)}",
              "RABBITMQ_URL": module_vhost, "LOG_LEVEL": "INFO"}
    for name in LEGACY:
        client.drop_database(name)
    try:
        yield values
    finally:
        for name in (*LEGACY, values["MONGODB_DB"]):
            client.drop_database(name)
        client.close()


def migrate(env: dict, stop_at: tuple[str, int] = ("never", 0)) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, *map(str, stop_at)],
                          env=devstack.process_env(env), cwd=devstack.ROOT,
                          capture_output=True, text=True, timeout=300)


def counts(out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def legacy_file(client, database: str, data: bytes, chunk_size: int, owner: str = "a@x.org",
                job_id: str | None = None) -> ObjectId:
    """A file stored as an earlier release stored it: pymongo's GridFS, bucket `fs`."""
    metadata = {"owner": owner, "job_id": job_id or str(ObjectId()),
                "content_type": "audio/mpeg" if database == "mp3s" else "video/mp4"}
    return gridfs.GridFSBucket(client[database]).upload_from_stream(
        "clip.mp4", io.BytesIO(data), chunk_size_bytes=chunk_size, metadata=metadata)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_sha(db, bucket: str, fid) -> str | None:
    """SHA-256 of a whole GridFS file read back; None when it is missing or incomplete."""
    doc = db[f"{bucket}.files"].find_one({"_id": fid})
    if doc is None:
        return None
    try:
        data = GridReader(db, bucket, doc).read()
    except OSError:
        return None
    return sha(data) if len(data) == doc["length"] else None


def test_legacy_files_move_byte_for_byte_and_a_second_run_does_nothing(env):
    client = pymongo.MongoClient(env["MONGODB_URI"], tz_aware=True)
    sizes = {"videos": [0, 10, SMALL_CHUNK, 20 * SMALL_CHUNK + 100],
             "mp3s": [CHUNK_SIZE * 2 + 3, 5]}
    contents = {}
    for database, lengths in sizes.items():
        for length in lengths:
            data = os.urandom(length)
            chunk = CHUNK_SIZE if length > CHUNK_SIZE else SMALL_CHUNK
            contents[(database, legacy_file(client, database, data, chunk))] = data
    client["mp3s"]["notes"].insert_one({"kept": "by the operator"})

    done = counts(migrate(env))
    total = sum(len(lengths) for lengths in sizes.values())
    assert done["files_copied"] == done["files_verified"] == done["sources_deleted"] == total
    assert done["bytes_copied"] == sum(len(data) for data in contents.values())
    assert done["incomplete_sources"] == done["conflicts"] == 0
    # `videos` held nothing else and is dropped; `mp3s` also holds the operator's collection
    assert done["legacy_databases"] == {"videos": "dropped",
                                        "mp3s": "kept: other collections: notes"}
    assert "videos" not in client.list_database_names()
    assert client["mp3s"]["notes"].find_one({})["kept"] == "by the operator"
    assert client["mp3s"]["fs.files"].find_one({}) is None

    store = Store(MongoSettings(env["MONGODB_URI"], env["MONGODB_DB"]))
    try:
        for (database, fid), data in contents.items():
            with store.open_download(LEGACY[database], fid) as reader:  # the services' reader
                assert reader.read() == data, (database, fid, len(data))
            doc = store.find_file(LEGACY[database], fid)
            assert doc["metadata"]["owner"] == "a@x.org" and doc["filename"] == "clip.mp4"
    finally:
        store.close()

    again = counts(migrate(env))
    assert {key: again[key] for key in ("files_copied", "files_verified", "already_copied",
                                        "sources_deleted", "jobs_upgraded")} == dict.fromkeys(
        ("files_copied", "files_verified", "already_copied", "sources_deleted",
         "jobs_upgraded"), 0)
    assert again["legacy_databases"] == {"videos": "absent",
                                         "mp3s": "kept: other collections: notes"}


def test_a_migration_killed_at_every_step_loses_nothing_and_the_next_run_finishes(env):
    client = pymongo.MongoClient(env["MONGODB_URI"], tz_aware=True)
    contents = {}
    for database, length, chunk in (("videos", 20 * SMALL_CHUNK + 100, SMALL_CHUNK),
                                    ("videos", 0, SMALL_CHUNK), ("videos", 10, SMALL_CHUNK),
                                    ("mp3s", 2 * CHUNK_SIZE + 3, CHUNK_SIZE)):
        data = os.urandom(length)
        contents[(database, legacy_file(client, database, data, chunk))] = sha(data)
    new = client[env["MONGODB_DB"]]

    def nothing_lost():
        for (database, fid), digest in contents.items():
            kept = stored_sha(client[database], "fs", fid) == digest
            copied = stored_sha(new, LEGACY[database], fid) == digest
            assert kept or copied, f"{database} {fid}: neither the source nor a copy is whole"

    # Each run is killed one step further into the first file (21 chunks, copied 4 at a time),
    # then into the second; the first file is thus left: half copied; copied, not checked;
    # checked, source whole; source chunks gone, its document not.
    for stop_at in (("chunks copied", 2), ("copy written", 1), ("copy verified", 1),
                    ("source chunks deleted", 1), ("source deleted", 2)):
        out = migrate(env, stop_at)
        assert out.returncode == -9, (stop_at, out.stdout, out.stderr)
        nothing_lost()
    first = min(contents, key=lambda key: str(key[1]))
    assert client["videos"]["fs.files"].find_one({"_id": first[1]}) is None

    last = counts(migrate(env))
    # the two files the killed runs finished are not copied again
    assert last["files_copied"] == last["sources_deleted"] == 2, last
    assert last["legacy_databases"] == {"videos": "dropped", "mp3s": "dropped"}
    for (database, fid), digest in contents.items():
        assert stored_sha(new, LEGACY[database], fid) == digest
        assert new["migrations"].find_one(
            {"_id": f"gridfs:{database}:{fid}"})["state"] == "done"
    assert counts(migrate(env))["files_copied"] == 0


def test_a_half_written_legacy_upload_is_reported_and_kept(env):
    client = pymongo.MongoClient(env["MONGODB_URI"], tz_aware=True)
    whole = legacy_file(client, "videos", b"a" * 300, 100)
    broken = legacy_file(client, "videos", b"b" * 300, 100)
    client["videos"]["fs.chunks"].delete_many({"files_id": broken})
    client["videos"]["fs.chunks"].insert_one({"files_id": broken, "n": 0, "data": b"b" * 100})

    done = counts(migrate(env))
    assert done["files_copied"] == 1 and done["incomplete_sources"] == 1, done
    assert done["legacy_databases"]["videos"] == "kept: 1 file(s) not moved"
    assert client["videos"]["fs.files"].find_one({"_id": broken})["length"] == 300
    new = client[env["MONGODB_DB"]]
    assert new[f"{VIDEOS}.files"].find_one({"_id": broken}) is None
    assert stored_sha(new, VIDEOS, whole) == sha(b"a" * 300)


def test_copying_streams_a_large_file_in_bounded_memory(env):
    client = pymongo.MongoClient(env["MONGODB_URI"], tz_aware=True)
    size = 48 * CHUNK_SIZE
    block = os.urandom(CHUNK_SIZE)
    digest = hashlib.sha256()

    class Source(io.RawIOBase):  # 48 MiB without holding them
        sent = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            n = min(len(buffer), size - self.sent)
            chunk = block[: n]
            buffer[:n] = chunk
            digest.update(chunk)
            self.sent += n
            return n

    fid = gridfs.GridFSBucket(client["videos"]).upload_from_stream(
        "big.mp4", Source(), chunk_size_bytes=CHUNK_SIZE, metadata={"owner": "a@x.org"})
    out = migrate(env)
    assert counts(out)["bytes_copied"] == size
    growth = json.loads(out.stderr.strip().splitlines()[-1])["rss_growth_kib"]
    # a few chunks at a time (about 25 MiB measured, whatever the file's size), never the file
    assert growth < 36 * 1024, f"{growth} KiB more while copying a {size >> 20} MiB file"
    assert stored_sha(client[env["MONGODB_DB"]], VIDEOS, fid) == digest.hexdigest()


def test_job_documents_of_earlier_releases_are_upgraded(env):
    client = pymongo.MongoClient(env["MONGODB_URI"], tz_aware=True)
    jobs = client[env["MONGODB_DB"]]["jobs"]
    created = dt.datetime(2026, 11, 22, 9, 30, 15, 250000, tzinfo=dt.UTC)
    # Each shape literally as the release stored it.
    dated_done = {  # the first release: dates, no retention
        "_id": ObjectId(), "owner": "a@x.org", "video_fid": ObjectId(), "filename": "a.mp4",
        "content_type": "video/mp4", "size": 10, "status": "done", "progress": 100,
        "attempts": 1, "created_at": created, "updated_at": created + dt.timedelta(seconds=9),
        "published_at": created, "claim": "c1", "mp3_fid": ObjectId(), "mp3_size": 5,
        "duration": 1.5, "error": None, "result_published_at": created, "notified_at": created}
    epoch_queued = {  # epoch seconds, before fair dispatch: its message was sent at upload
        "_id": ObjectId(), "owner": "a@x.org", "video_fid": ObjectId(), "filename": "b.mp4",
        "content_type": "video/mp4", "size": 10, "status": "queued", "progress": 0,
        "attempts": 0, "created_at": 1795339815.25, "updated_at": 1795339816.0,
        "published_at": 1795339815.5}
    epoch_unpublished = {**epoch_queued, "_id": ObjectId(), "published_at": None}
    epoch_failed = {**epoch_queued, "_id": ObjectId(), "status": "failed", "error": "no audio"}
    current = {**epoch_queued, "_id": ObjectId(), "owner": "0" * 32, "options": {},
               "dispatched_at": None, "published_at": None}
    for doc in (dated_done, epoch_queued, epoch_unpublished, epoch_failed, current):
        jobs.insert_one(doc)
    with pytest.raises(TypeError):  # what GET /jobs met: a date where it reads epoch seconds
        job_json(jobs.find_one({"_id": dated_done["_id"]}))

    done = counts(migrate(env))
    assert done["jobs_upgraded"] == 3 and done["timestamps_converted"] == 5, done
    assert done["dispatch_recorded"] == 2 and done["expiry_set"] == 1, done

    upgraded = jobs.find_one({"_id": dated_done["_id"]})
    assert job_json(upgraded)["created_at"] == "2026-11-22T09:30:15.250Z"
    assert upgraded["updated_at"] == created.timestamp() + 9
    retention = 168 * 3600
    assert abs(upgraded["expires_at"] - (dt.datetime.now(dt.UTC).timestamp() + retention)) < 60
    assert jobs.find_one({"_id": epoch_queued["_id"]})["dispatched_at"] == 1795339815.5
    assert jobs.find_one({"_id": epoch_unpublished["_id"]})["dispatched_at"] == 1795339815.25
    assert "dispatched_at" not in jobs.find_one({"_id": epoch_failed["_id"]})
    assert jobs.find_one({"_id": current["_id"]}) == current
    # the owner's two waiting jobs of the earlier release count as sent: none is sent again
    store = Store(MongoSettings(env["MONGODB_URI"], env["MONGODB_DB"]))
    try:
        assert Jobs(store).dispatch("a@x.org", publisher=None) == 0
    finally:
        store.close()
    assert counts(migrate(env))["jobs_upgraded"] == 0


def legacy_done_job(db, jpeg: bytes | None, cover: bool = True) -> dict:
    """A done job as the release before cover files left it: the cover only in the ID3 tag at
    the start of its MP3 (``jpeg``; None: a tag without one), ``cover`` recorded on the job."""
    job_id, video_fid = ObjectId(), ObjectId()
    mp3 = id3.build("Talk", None, None, jpeg) + os.urandom(3 * CHUNK_SIZE)  # tag, then audio
    writer = GridWriter(db, MP3S, "talk.mp3", {"owner": "0" * 32, "job_id": str(job_id),
                                               "video_fid": str(video_fid),
                                               "content_type": "audio/mpeg"}, CHUNK_SIZE)
    writer.write(mp3)
    job = {"_id": job_id, "owner": "0" * 32, "video_fid": video_fid, "filename": "talk.mp4",
           "content_type": "video/mp4", "size": 10, "options": {}, "status": "done",
           "progress": 100, "attempts": 1, "dispatched_at": 1.0, "published_at": 1.0,
           "created_at": 1.0, "updated_at": 2.0, "mp3_fid": writer.close(),
           "mp3_size": len(mp3), "duration": 1.5, "error": None, "expires_at": 2e9,
           "mode": "encode", "bitrate": 128, "chapters": 0,
           "cover": {"width": 600, "height": 338, "size": len(jpeg or b"")} if cover else None}
    db["jobs"].insert_one(job)
    return job


def cover_files(db, job: dict) -> list[dict]:
    return [doc for doc in db[f"{MP3S}.files"].find({"metadata.job_id": str(job["_id"])})
            if covers.is_cover(doc)]


def test_covers_embedded_by_an_earlier_release_become_cover_files_once(env):
    client = pymongo.MongoClient(env["MONGODB_URI"], tz_aware=True)
    db = client[env["MONGODB_DB"]]
    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(30_000) + b"\xff\xd9"
    legacy = legacy_done_job(db, jpeg)
    no_picture = legacy_done_job(db, None)  # recorded, yet not in the tag: left as it is
    no_cover = legacy_done_job(db, None, cover=False)  # cover=none or audio only: nothing to do

    done = counts(migrate(env))
    assert (done["covers_extracted"], done["covers_not_found"]) == (1, 1), done
    job = db["jobs"].find_one({"_id": legacy["_id"]})
    [picture] = cover_files(db, legacy)
    assert job["cover_fid"] == picture["_id"] and job["cover"] == legacy["cover"]
    assert picture["metadata"] == {"owner": "0" * 32, "job_id": str(legacy["_id"]),
                                   "kind": "cover", "content_type": "image/jpeg"}
    store = Store(MongoSettings(env["MONGODB_URI"], env["MONGODB_DB"]))
    try:
        assert covers.load(store, job["cover_fid"]) == jpeg  # what GET /jobs/<id>/cover sends
    finally:
        store.close()
    for other in (no_picture, no_cover):
        assert db["jobs"].find_one({"_id": other["_id"]}) == other and not cover_files(db, other)
    assert stored_sha(db, MP3S, legacy["mp3_fid"]) is not None  # the MP3 keeps its tag

    again = counts(migrate(env))
    assert (again["covers_extracted"], again["covers_not_found"]) == (0, 1), again
    assert cover_files(db, legacy) == [picture]


def test_a_migration_killed_between_storing_and_recording_a_cover_leaves_one(env):
    client = pymongo.MongoClient(env["MONGODB_URI"], tz_aware=True)
    db = client[env["MONGODB_DB"]]
    jpeg = b"\xff\xd8" + os.urandom(1000) + b"\xff\xd9"
    first, second = legacy_done_job(db, jpeg), legacy_done_job(db, jpeg)
    out = migrate(env, ("cover stored", 2))  # the first job done, the second's not recorded
    assert out.returncode == -9, (out.stdout, out.stderr)
    assert len(cover_files(db, first)) == len(cover_files(db, second)) == 1
    assert "cover_fid" not in db["jobs"].find_one({"_id": second["_id"]})

    assert counts(migrate(env))["covers_extracted"] == 1
    for job in (first, second):
        [picture] = cover_files(db, job)
        assert db["jobs"].find_one({"_id": job["_id"]})["cover_fid"] == picture["_id"]
