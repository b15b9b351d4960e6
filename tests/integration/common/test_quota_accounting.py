"""Owners' usage and the uploads counted against their quotas (common.quotas) on the real
nx-27017 (and RabbitMQ, for the jobs recorded): one aggregation, uploads in progress counted
once, parallel uploads taking what is free one after the other, stale uploads forgotten."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import gridfs
import pytest
from bson import ObjectId

from common import quotas as quotas_module
from common.jobs import Jobs
from common.quotas import UPLOAD_STALE_SECONDS, UPLOADS, OverLimit, Quotas, Usage
from common.store import VIDEOS
from ops import upkeep

pytestmark = pytest.mark.integration


def record(store, publisher, job_id, owner: str, size: int) -> dict:
    """A stored video and its job, as the gateway records them once its upload is complete."""
    fid = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS).upload_from_stream(
        "clip.mov", b"x" * size, metadata={"owner": owner, "job_id": str(job_id)})
    return Jobs(store).create(job_id, owner, fid, "clip.mov", "video/quicktime", size,
                              publisher)


def test_usage_sums_every_status_of_the_owner_in_one_aggregation(store):
    """Jobs of an earlier release (written without their counts): the first read of an owner
    with no usage document aggregates them, and makes the document from them."""
    quotas = Quotas(store)
    assert quotas.usage("c@example.com") == Usage()
    store.jobs.insert_many([
        {"_id": ObjectId(), "owner": "a@example.com", "status": "queued", "size": 100},
        {"_id": ObjectId(), "owner": "a@example.com", "status": "converting", "size": 20},
        {"_id": ObjectId(), "owner": "a@example.com", "status": "done", "size": 7000,
         "mp3_size": 3},
        {"_id": ObjectId(), "owner": "a@example.com", "status": "done", "size": 7000},  # older
        {"_id": ObjectId(), "owner": "a@example.com", "status": "failed", "size": 5000},
        {"_id": ObjectId(), "owner": "a@example.com", "status": "expired", "size": 5000,
         "mp3_size": None},
        {"_id": ObjectId(), "owner": "b@example.com", "status": "queued", "size": 9},
    ])
    usage = quotas.usage("a@example.com")
    assert (usage.bytes, usage.active_jobs) == (123, 2)  # videos waiting, MP3s kept
    assert usage.counts == {"queued": 1, "converting": 1, "done": 2, "failed": 1, "expired": 1}
    assert quotas.usage("b@example.com").bytes == 9
    doc = store.db["usage"].find_one({"_id": "a@example.com"})
    assert (doc["bytes"], doc["active_jobs"], doc["checked_at"]) == (123, 2, None)
    assert quotas.usage("a@example.com") == usage  # from the document now


def test_uploads_in_progress_count_until_released(store, publisher):
    quotas = Quotas(store)
    first, second, stale = ObjectId(), ObjectId(), ObjectId()
    assert quotas.reserve(first, "a@example.com", 1000).bytes == 0  # the usage before it
    assert quotas.reserve(second, "a@example.com", 0).bytes == 1000
    quotas.resize(second, "a@example.com", 300)
    quotas.reserve(stale, "a@example.com", 5000)
    ago = time.time() - UPLOAD_STALE_SECONDS - 1
    store.db[UPLOADS].update_one({"_id": "a@example.com"},
                                 {"$set": {f"uploads.{stale}.updated_at": ago}})
    usage = quotas.usage("a@example.com")
    assert (usage.bytes, usage.active_jobs) == (1300, 2)  # the stale one no longer counts
    assert quotas.usage("b@example.com").bytes == 0

    # Its job recorded, an upload still counted until it is released counts once, as the job.
    record(store, publisher, first, "a@example.com", 1000)
    usage = quotas.usage("a@example.com")
    assert (usage.bytes, usage.active_jobs, usage.counts["queued"]) == (1300, 2, 1)
    quotas.release(first, "a@example.com")
    quotas.release(second, "a@example.com")
    usage = quotas.usage("a@example.com")
    assert (usage.bytes, usage.active_jobs) == (1000, 1)  # the job alone
    assert set(store.db[UPLOADS].find_one({"_id": "a@example.com"})["uploads"]) == {str(stale)}
    # The sweep removes what no one wrote to since the stale upload (and a record of one
    # upload as the previous release kept them).
    store.db[UPLOADS].update_one({"_id": "a@example.com"}, {"$set": {"updated_at": ago}})
    store.db[UPLOADS].insert_one({"_id": ObjectId(), "owner": "c@example.com", "size": 5,
                                  "updated_at": ago})
    assert upkeep.remove_orphans(Jobs(store), 3600)["stale_uploads"] == 2
    assert store.db[UPLOADS].count_documents({}) == 0


def test_an_upload_that_becomes_a_job_while_usage_is_read_counts_once(store, monkeypatch):
    """An owner with no usage document yet, whose jobs are aggregated: its job recorded
    between the reads of which uploads are jobs and of the jobs, the jobs are read again, and
    it counts once (as the job)."""
    quotas, job_id = Quotas(store), ObjectId()
    quotas.reserve(job_id, "a@example.com", 1000)
    store.db["usage"].delete_many({})
    of_jobs, reads = quotas._of_jobs, []

    def recorded_meanwhile(owner: str, *statuses) -> Usage:
        if not reads:
            store.jobs.insert_one({"_id": job_id, "owner": owner, "status": "queued",
                                   "size": 1000})
        reads.append(owner)
        return of_jobs(owner, *statuses)

    monkeypatch.setattr(quotas, "_of_jobs", recorded_meanwhile)
    usage = quotas.usage("a@example.com")
    assert (usage.bytes, usage.active_jobs, len(reads)) == (1000, 1, 2)


def test_uploads_counted_at_once_take_what_is_free_one_after_the_other(store, publisher):
    """15 uploads counted at the same moment with 9 places free: 9 fit, 6 are refused; 8 of
    300 bytes with 1000 free: 3 fit. Each is checked against those counted before it only."""
    quotas = Quotas(store)
    record(store, publisher, ObjectId(), "a@example.com", 11)  # one waiting already

    def together(count: int, reserve) -> list:
        ready = threading.Barrier(count, timeout=30)

        def one(_):
            ready.wait()
            try:
                reserve(ObjectId())
            except OverLimit as exc:
                return exc.limit
            return "counted"

        with ThreadPoolExecutor(count) as pool:
            return sorted(pool.map(one, range(count)))

    places = together(15, lambda job_id: quotas.reserve(job_id, "a@example.com", 100,
                                                        max_active=10, max_bytes=10**9))
    assert places == ["active_jobs"] * 6 + ["counted"] * 9, places
    assert quotas.usage("a@example.com").active_jobs == 10

    room = together(8, lambda job_id: quotas.reserve(job_id, "b@example.com", 300,
                                                     max_active=100, max_bytes=1000))
    assert room == ["bytes"] * 5 + ["counted"] * 3, room
    assert quotas.usage("b@example.com").bytes == 900

    # Growing past what it was counted for is checked too; a refusal leaves its count as it was.
    growing = ObjectId()
    quotas.reserve(growing, "c@example.com", 0, max_active=1, max_bytes=1000)
    quotas.resize(growing, "c@example.com", 600, max_bytes=1000)
    with pytest.raises(OverLimit) as refused:
        quotas.resize(growing, "c@example.com", 1200, max_bytes=1000)
    assert refused.value.limit == "bytes" and refused.value.usage.bytes == 0
    assert quotas.usage("c@example.com").bytes == 600
    quotas.resize(growing, "c@example.com", 500, max_bytes=1000)  # the exact size at the end
    assert quotas.usage("c@example.com").bytes == 500


def test_an_admission_checks_the_upload_as_it_grows_and_releases_it_at_its_end(store,
                                                                             monkeypatch):
    monkeypatch.setattr(quotas_module, "CHECK_BYTES", 100)
    quotas, job_id = Quotas(store), ObjectId()
    store.jobs.insert_one({"_id": ObjectId(), "owner": "a@example.com", "status": "done",
                           "mp3_size": 400})
    with quotas.admit(job_id, "a@example.com", 300, max_active=2,
                      max_bytes=1000) as admission:
        assert admission.usage.bytes == 400  # without this upload
        admission.check(50)  # under what it was admitted for: nothing to do
        assert quotas.usage("a@example.com").bytes == 700
        admission.check(450)  # 150 past the last count: brought up to date
        assert quotas.usage("a@example.com").bytes == 850
        admission.check(500)  # less than CHECK_BYTES more: not yet
        assert quotas.usage("a@example.com").bytes == 850
        with pytest.raises(OverLimit) as refused:
            admission.check(700)  # 400 + 700 > 1000
        assert refused.value.limit == "bytes" and refused.value.usage.bytes == 400
        admission.check(420, final=True)  # its exact size at the end
        assert quotas.usage("a@example.com").bytes == 820
    assert quotas.usage("a@example.com").bytes == 400  # released
    with pytest.raises(OverLimit) as refused:
        quotas.admit(ObjectId(), "a@example.com", 700, max_bytes=1000)
    assert refused.value.limit == "bytes"
    assert quotas.usage("a@example.com").bytes == 400  # a refusal records nothing
