"""The sweep's upkeep of jobs and files: find what needs doing, and do it through the jobs'
transitions (``common.jobs``), each a compare-and-set on what was read.

- unpublished jobs: a `video` message that never went out is published; a job whose upload
  never finished fails; owners with room get their next job (a lost dispatch race);
- stuck jobs: a converter that stopped responding loses its job to the queue, or after
  MAX_ATTEMPTS the job fails;
- expiry: MP3s past their retention (MP3_RETENTION_HOURS), videos kept for failed jobs;
- orphans: files no job refers to, chunks of files never completed (but those of a resumable
  upload still being received), uploads no longer heard of;
- resumable uploads past their expiry, with their chunks (``common.resumable``);
- after a restore: jobs made to agree with the files restored with them;
- usage: owners' usage documents (``common.usage``) checked against their jobs, and corrected
  (``reconcile_usage``).
"""

from common import covers, mongo_compat, resumable
from common import usage as ledger
from common.jobs import ACTIVE, Jobs, Status
from common.quotas import Quotas
from common.store import MP3S, VIDEOS, now


def recover_unpublished(jobs: Jobs, older_than: float, publisher) -> dict:
    """Publish jobs whose message never went out; fail those whose upload never finished;
    dispatch owners who have room. A publish that fails leaves the job for a sweep
    ``older_than`` later."""
    counts = {"republished": 0, "failed": 0, "dispatched": 0}
    collection, store = jobs.store.jobs, jobs.store
    for job in list(collection.find({"status": Status.QUEUED.value,
                                     "dispatched_at": {"$ne": None}, "published_at": None,
                                     "updated_at": {"$lt": now() - older_than}})):
        if store.find_file(VIDEOS, job["video_fid"]) is None:
            counts["failed"] += jobs.fail(
                job["_id"], "the upload was interrupted before it was stored", publisher,
                where={"status": Status.QUEUED.value, "published_at": None,
                       "updated_at": job["updated_at"]})
        else:
            counts["republished"] += jobs.republish(job, publisher)
    for owner in collection.distinct("owner", {"status": Status.QUEUED.value,
                                               "dispatched_at": None}):
        counts["dispatched"] += jobs.dispatch(owner, publisher)
    return counts


def recover_stuck(jobs: Jobs, older_than: float, max_attempts: int, publisher) -> dict:
    """Re-queue jobs whose converter stopped responding; fail them after ``max_attempts``."""
    counts = {"requeued": 0, "failed": 0}
    for job in list(jobs.store.jobs.find({"status": Status.CONVERTING.value,
                                          "updated_at": {"$lt": now() - older_than}})):
        if job.get("attempts", 0) >= max_attempts:
            # only if still silent: not when its converter spoke meanwhile, nor twice
            counts["failed"] += jobs.fail(
                job["_id"], f"gave up after {job['attempts']} attempts: the converter "
                            "stopped responding", publisher, permanent=False,
                where={"status": Status.CONVERTING.value, "updated_at": job["updated_at"]})
        else:
            counts["requeued"] += jobs.requeue(job, publisher)
    return counts


def expire(jobs: Jobs, publisher=None) -> dict:
    """Delete MP3s past ``expires_at`` (the job becomes `expired`, and its owner's webhooks
    hear `job.expired` through ``publisher``), and the videos kept for failed jobs once they
    are as old as the MP3 retention."""
    moment = now()
    counts = {"expired": 0, "failed_videos_dropped": 0}
    collection = jobs.store.jobs
    for job in list(collection.find({"status": Status.DONE.value,
                                     "expires_at": {"$lt": moment}})):
        counts["expired"] += jobs.expire(job, publisher=publisher)
    stale = moment - jobs.settings.mp3_retention_seconds
    for job in list(collection.find({"status": Status.FAILED.value, "video_deleted_at": None,
                                     "updated_at": {"$lt": stale}})):
        # counted by the sweep that marked it (two at once both find it)
        counts["failed_videos_dropped"] += jobs.drop_video(job)
    return counts


def remove_orphans(jobs: Jobs, older_than: float) -> dict:
    """Delete files no job refers to (a gateway stopped between storing a video and recording
    its job, a converter between storing an MP3 or its cover and finishing; a cover whose job
    is no longer done) and chunks whose file was never completed, once older than
    ``older_than`` seconds; forget uploads no longer heard of."""
    store, cutoff = jobs.store, now() - older_than
    counts = {"orphan_files": 0, "orphan_chunks": 0}
    for bucket, ref in ((VIDEOS, "video_fid"), (MP3S, "mp3_fid")):
        # a resumable upload still being received: chunks without their file document yet
        # (nx-27017 makes one, empty, with the first chunk)
        receiving = resumable.unfinished_file_ids(store) if bucket == VIDEOS else set()
        for doc in list(store.files(bucket).find({}, {"_id": 1, "metadata": 1})):
            if doc["_id"].generation_time.timestamp() >= cutoff or doc["_id"] in receiving:
                continue
            job_id = (doc.get("metadata") or {}).get("job_id")
            job = jobs.get(job_id) if job_id else None
            if covers.is_cover(doc):  # a cover picture is kept while its job is done
                kept = (job or {}).get("cover_fid") == doc["_id"] and job["status"] == Status.DONE
            else:
                kept = (job or {}).get(ref) == doc["_id"]
            if not kept:
                store.delete_file(bucket, doc["_id"])
                counts["orphan_files"] += 1
        for files_id in store.chunks(bucket).distinct("files_id"):
            if (files_id not in receiving and files_id.generation_time.timestamp() < cutoff
                    and store.files(bucket).find_one({"_id": files_id}) is None):
                store.delete_file(bucket, files_id)
                counts["orphan_chunks"] += 1
    counts["stale_uploads"] = Quotas(store).remove_stale_uploads()
    return counts


def remove_expired_uploads(jobs: Jobs) -> dict:
    """Remove resumable uploads past their expiry (RESUMABLE_UPLOAD_EXPIRY_HOURS after their
    creation) with what came of them, and stop counting them in their owners' quotas."""
    return {"expired_uploads": resumable.remove_expired(jobs.store)}


def reconcile_restored(jobs: Jobs) -> dict:
    """Make jobs restored from a backup agree with the files restored with them (the
    collections are copied one after the other): a done job whose MP3 is missing or incomplete
    becomes expired (its cover goes too); one whose cover file alone is, keeps its MP3 and only
    forgets the cover file (``python -m ops migrate`` takes the picture out of the MP3 again);
    a queued or converting job whose video is missing or incomplete fails; every other queued
    or converting job waits for the next sweep to dispatch it again. Files no job refers to are
    left to ``remove_orphans``. Nothing is published."""
    counts = {"expired": 0, "failed": 0, "requeued": 0, "covers_dropped": 0}
    collection = jobs.store.jobs
    for job in list(collection.find({"status": Status.DONE.value})):
        if not _file_complete(jobs.store, MP3S, job.get("mp3_fid")):
            counts["expired"] += jobs.expire(
                job, reason="its MP3 was not in the backup the service was restored from")
        elif job.get("cover_fid") and not _file_complete(jobs.store, MP3S, job["cover_fid"]):
            counts["covers_dropped"] += jobs.drop_cover_restored(job)
    for job in list(collection.find({"status": {"$in": [s.value for s in ACTIVE]}})):
        if not _file_complete(jobs.store, VIDEOS, job.get("video_fid")):
            counts["failed"] += jobs.fail_restored(
                job, "its video was not in the backup the service was restored from: upload "
                     "it again")
        else:
            counts["requeued"] += jobs.requeue_restored(job)
    return counts


def _file_complete(store, bucket: str, fid) -> bool:
    """True when the GridFS file exists with every chunk its length needs."""
    doc = store.find_file(bucket, fid)
    if doc is None:
        return False
    expected = -(-int(doc.get("length") or 0) // int(doc.get("chunkSize") or 1))
    return mongo_compat.count_chunks(store.chunks(bucket), doc["_id"], expected) >= expected


def reconcile_usage(jobs: Jobs, limit: int) -> dict:
    """Check up to ``limit`` owners' usage documents against their jobs (``Quotas.reconcile``),
    correcting those that are off (a process died between a job's write and its count), in
    this order: documents marked ``partial`` (made by a transition, not from a count), owners
    with jobs and no document (an earlier release's, a restore's), documents never checked
    (made at once by a read), then those checked longest ago: a rotating slice, so every
    document is checked every (owners / ``limit``) sweeps. Documents of owners with no job
    left and nothing counted are removed (an account deleted while a transition ran)."""
    quotas, usage_docs = Quotas(jobs.store), jobs.store.db[ledger.USAGE]
    counts = {"usage_agreed": 0, "usage_created": 0, "usage_corrected": 0, "usage_moved": 0}
    # one read of every document (an owner's is small), sorted here
    docs = list(usage_docs.find({}, {"_id": 1, "partial": 1, "checked_at": 1}))
    known = {doc["_id"] for doc in docs}
    order = ([doc["_id"] for doc in docs if doc.get("partial")]
             + [owner for owner in jobs.owners() if owner not in known]
             + [doc["_id"] for doc in sorted(
                 (doc for doc in docs if not doc.get("partial")),
                 key=lambda doc: (doc.get("checked_at") is not None,
                                  doc.get("checked_at") or 0))])
    chosen = list(dict.fromkeys(order))[:limit]
    for owner in chosen:
        outcome = quotas.reconcile(owner)
        counts[f"usage_{outcome}"] += 1
        if outcome == "agreed":
            doc = usage_docs.find_one({"_id": owner})
            if doc is not None and not doc.get("bytes") and not doc.get("active_jobs") and not \
                    any((doc.get("jobs") or {}).values()) and jobs.store.jobs.find_one(
                        {"owner": owner}, {"_id": 1}) is None:
                usage_docs.delete_one({"_id": owner, "version": doc.get("version")})
    return counts
