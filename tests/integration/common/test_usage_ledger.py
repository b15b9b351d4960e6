"""Owners' usage documents (common.usage) on the real nx-27017 and RabbitMQ: every transition of
common.jobs keeps its owner's equal to what the reconciliation computes from the jobs; a count
lost between a job's write and its ``$inc`` is corrected by the sweep; a count that lands while
the sweep reconciles is never lost; owners with none get one; a deleted account keeps none."""

import gridfs
import pytest
from bson import ObjectId

from common import quotas as quotas_module
from common import usage as ledger
from common.jobs import Jobs, Status, usage_of
from common.quotas import Quotas, Usage, _from_doc
from common.settings import LifecycleSettings
from common.store import MP3S, VIDEOS
from ops import upkeep

pytestmark = pytest.mark.integration

A, B = "a" * 32, "b" * 32


@pytest.fixture(autouse=True)
def no_settling(monkeypatch):
    """The reconciliation's second look at once (no transition runs beside these tests but
    those they make)."""
    monkeypatch.setattr(quotas_module, "RECONCILE_SETTLE_SECONDS", 0)


def upload(store, jobs, publisher, owner: str, size: int = 1000) -> dict:
    job_id = ObjectId()
    fid = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS).upload_from_stream(
        "clip.mov", b"v" * size, metadata={"owner": owner, "job_id": str(job_id)})
    return jobs.create(job_id, owner, fid, "clip.mov", "video/quicktime", size, publisher)


def mp3(store, job: dict, size: int = 77):
    return gridfs.GridFSBucket(store.db, bucket_name=MP3S).upload_from_stream(
        "clip.mp3", b"m" * size, metadata={"owner": job["owner"], "job_id": str(job["_id"])})


def document(store, owner: str) -> Usage:
    doc = store.db[ledger.USAGE].find_one({"_id": owner})
    assert doc is not None and not doc.get("partial"), doc
    return _from_doc(doc)


def assert_agrees(store, *owners: str) -> None:
    """Each owner's document holds what their jobs aggregate to."""
    quotas = Quotas(store)
    for owner in owners:
        assert document(store, owner) == quotas._of_jobs(owner), owner


def test_every_transition_keeps_the_document_equal_to_the_jobs(store, publisher):
    jobs = Jobs(store, LifecycleSettings(conversions_at_once=1))
    assert Quotas(store).usage(A) == Usage()  # the first read makes the document (empty)
    first = upload(store, jobs, publisher, A, 1000)  # create + dispatch
    second = upload(store, jobs, publisher, A, 300)
    assert_agrees(store, A)
    claimed = jobs.claim(first["_id"], "t1", 1)
    assert_agrees(store, A)
    assert jobs.to_long_lane(claimed, "t1", publisher)
    assert_agrees(store, A)
    claimed = jobs.claim(first["_id"], "t2", 1)
    jobs.progress(first["_id"], "t2", 50.0)
    assert jobs.claim(first["_id"], "t3", 2)  # an interrupted conversion claimed again
    assert jobs.finish({**claimed, "claim": "t3"}, "t3", mp3(store, first), 77, 3.0, publisher)
    assert_agrees(store, A)
    assert document(store, A).bytes == 77 + 300
    assert jobs.expire(jobs.get(first["_id"]))
    assert_agrees(store, A)
    assert jobs.fail(second["_id"], "no audio", publisher, permanent=False)
    assert_agrees(store, A)
    assert jobs.redrive(second["_id"], "video", publisher)
    assert_agrees(store, A)
    claimed = jobs.claim(second["_id"], "t4", 1)
    assert jobs.requeue(jobs.get(second["_id"]), publisher)  # the sweep: converter silent
    assert_agrees(store, A)
    third = upload(store, jobs, publisher, A, 50)
    assert jobs.fail_restored(jobs.get(third["_id"]), "not in the backup")
    assert_agrees(store, A)
    assert jobs.requeue_restored(jobs.get(third["_id"]))  # (failed back to queued)
    assert_agrees(store, A)
    assert Quotas(store).usage(B) == Usage()  # the account jobs of an address go to
    assert jobs.hand_over(A, B) == 3
    assert_agrees(store, A, B)
    assert document(store, A) == Usage()
    assert document(store, B).counts == {"queued": 2, "converting": 0, "done": 0,
                                         "failed": 0, "expired": 1}
    assert jobs.delete(second["_id"], B, publisher)
    assert_agrees(store, B)
    assert (document(store, B).bytes, document(store, B).active_jobs) == (50, 1)


def test_the_rule_counts_what_the_quotas_limit():
    assert usage_of({"owner": A, "status": "queued", "size": 5}) == {
        "jobs.queued": 1, "active_jobs": 1, "bytes": 5}
    assert usage_of({"owner": A, "status": "done", "size": 5, "mp3_size": 2}) == {
        "jobs.done": 1, "bytes": 2}
    assert usage_of({"owner": A, "status": "expired", "mp3_size": 2}) == {"jobs.expired": 1}
    assert usage_of(None) == {}


def test_a_count_lost_between_the_write_and_the_inc_is_corrected_by_the_sweep(
        store, publisher, monkeypatch):
    jobs = Jobs(store)
    Quotas(store).usage(A)  # the owner's document made (empty) before their first job
    job = upload(store, jobs, publisher, A, 1000)
    claimed = jobs.claim(job["_id"], "t", 1)
    add, calls = ledger.add, []

    def dies_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise ConnectionError("the process died before its count")
        return add(*args, **kwargs)

    monkeypatch.setattr(ledger, "add", dies_once)
    assert jobs.finish(claimed, "t", mp3(store, job), 77, 3.0, publisher)  # the job is done
    assert document(store, A).counts["converting"] == 1  # but not counted so
    assert (document(store, A).bytes, Quotas(store)._of_jobs(A).bytes) == (1000, 77)
    counts = upkeep.reconcile_usage(jobs, limit=10)
    assert counts["usage_corrected"] == 1
    assert_agrees(store, A)
    assert Quotas(store).usage(A).bytes == 77
    assert upkeep.reconcile_usage(jobs, limit=10)["usage_agreed"] == 1


def test_a_count_that_lands_while_the_sweep_reconciles_is_not_lost(store, publisher,
                                                                  monkeypatch):
    jobs, quotas = Jobs(store), Quotas(store)
    quotas.usage(A)
    upload(store, jobs, publisher, A, 1000)
    # a job written whose count is late: it lands while the sweep looks again
    late = {"_id": ObjectId(), "owner": A, "status": "queued", "size": 5}
    store.jobs.insert_one(late)
    monkeypatch.setattr(quotas_module, "RECONCILE_SETTLE_SECONDS", 0.01)
    monkeypatch.setattr(quotas_module, "_settle",
                        lambda _s: ledger.add(store.db, A, usage_of(late)))
    assert quotas.reconcile(A) == "moved"  # nothing written over the count
    assert_agrees(store, A)
    assert document(store, A).bytes == 1005

    # a transition between the reconciliation's read of the document and its write
    store.jobs.delete_one({"_id": late["_id"]})  # its count lost (as if crashed)
    of_jobs, made = quotas._of_jobs, []

    def created_meanwhile(owner, *statuses):
        counted = of_jobs(owner, *statuses)
        if not made:
            made.append(upload(store, jobs, publisher, A, 20))
        return counted

    monkeypatch.setattr(quotas_module, "_settle", lambda _s: None)
    monkeypatch.setattr(quotas, "_of_jobs", created_meanwhile)
    assert quotas.reconcile(A) == "moved"
    monkeypatch.undo()
    assert document(store, A).bytes == 1025  # the upload counted, the lost delete not yet
    assert Quotas(store).reconcile(A, settle=0) == "corrected"
    assert_agrees(store, A)
    assert document(store, A).bytes == 1020


def test_owners_with_no_document_get_one_from_the_sweep(store, publisher):
    jobs = Jobs(store)
    store.jobs.insert_many([  # an earlier release's jobs, or a restore's
        {"_id": ObjectId(), "owner": A, "status": "done", "size": 900, "mp3_size": 40},
        {"_id": ObjectId(), "owner": A, "status": "queued", "size": 10},
        {"_id": ObjectId(), "owner": B, "status": "failed", "size": 10},
    ])
    assert store.db[ledger.USAGE].count_documents({}) == 0
    assert upkeep.reconcile_usage(jobs, limit=1)["usage_created"] == 1  # bounded
    assert upkeep.reconcile_usage(jobs, limit=5)["usage_created"] == 1
    assert_agrees(store, A, B)
    assert (document(store, A).bytes, document(store, A).active_jobs) == (50, 1)
    # a transition on an owner with no document makes a partial one, computed before trusted
    store.db[ledger.USAGE].delete_many({})
    job = jobs.claim(store.jobs.find_one({"owner": A, "status": "queued"})["_id"], "t", 1)
    assert store.db[ledger.USAGE].find_one({"_id": A})["partial"] is True
    usage = Quotas(store).usage(A)
    assert (usage.bytes, usage.active_jobs, usage.counts["converting"]) == (50, 1, 1)
    assert_agrees(store, A)
    assert job["status"] == Status.CONVERTING


def test_an_uploads_job_counts_once_from_the_moment_its_count_lands(store, publisher):
    jobs, quotas = Jobs(store), Quotas(store)
    job_id = ObjectId()
    quotas.reserve(job_id, A, 1000)
    assert (quotas.usage(A).bytes, quotas.usage(A).active_jobs) == (1000, 1)
    fid = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS).upload_from_stream(
        "clip.mov", b"v" * 1000, metadata={"owner": A, "job_id": str(job_id)})
    store.jobs.insert_one({"_id": job_id, "owner": A, "status": "queued", "size": 1000,
                           "video_fid": fid})  # its job written, its count not yet landed
    assert (quotas.usage(A).bytes, quotas.usage(A).active_jobs) == (1000, 1)  # as the upload
    store.jobs.delete_one({"_id": job_id})
    jobs.create(job_id, A, fid, "clip.mov", "video/quicktime", 1000, publisher)
    assert (quotas.usage(A).bytes, quotas.usage(A).active_jobs) == (1000, 1)  # as the job
    quotas.release(job_id, A)
    assert (quotas.usage(A).bytes, quotas.usage(A).active_jobs) == (1000, 1)
    # released, it leaves the document's record of uploads in flight: that stays small
    assert not store.db[ledger.USAGE].find_one({"_id": A}).get("recorded")


def test_records_left_by_a_stopped_upload_go_at_the_next_check(store, publisher, monkeypatch):
    """A gateway stopped between recording a job and releasing its upload leaves the job in
    ``recorded``; the sweep's check drops it once the upload would be stale anyway."""
    jobs = Jobs(store)
    job = upload(store, jobs, publisher, B)  # recorded, never released
    Quotas(store).reconcile(B)  # B's first document was partial: now counted and trusted
    assert str(job["_id"]) in store.db[ledger.USAGE].find_one({"_id": B})["recorded"]
    later = quotas_module.now() + quotas_module.UPLOAD_STALE_SECONDS + 1
    monkeypatch.setattr(quotas_module, "now", lambda: later)
    assert Quotas(store).reconcile(B) == "agreed"
    assert not store.db[ledger.USAGE].find_one({"_id": B}).get("recorded")


def test_a_deleted_account_leaves_no_document(store, publisher):
    jobs = Jobs(store)
    Quotas(store).usage(A)
    for size in (10, 20):
        upload(store, jobs, publisher, A, size)
    assert document(store, A).bytes == 30
    assert jobs.delete_owner(A) == 2
    assert store.db[ledger.USAGE].find_one({"_id": A}) is None
    assert Quotas(store).usage(A) == Usage()
    # one left by a transition racing the deletion goes with the sweep once nothing is counted
    store.db[ledger.USAGE].delete_many({})
    ledger.add(store.db, B, {"bytes": 0})
    counts = upkeep.reconcile_usage(jobs, limit=10)
    assert counts["usage_corrected"] == 1
    upkeep.reconcile_usage(jobs, limit=10)
    assert store.db[ledger.USAGE].find_one({"_id": B}) is None

