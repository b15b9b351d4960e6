"""A job's whole life in one place: its states and every transition between them.

    upload ─▶ queued ─(dispatch)─▶ `video` queue ─(claim)─▶ converting ─(finish)─▶ done
                                                              └─(fail)──▶ failed
    done ─(expire, after MP3_RETENTION_HOURS)─▶ expired
    any state ─(delete)─▶ gone: a job being converted is cancelled (its converter notices)

Each transition does its database write, its publish and its "published" mark together. This
module is the only code that writes the `jobs` collection or publishes to `video` and `mp3`;
the services and the operator commands call it.

Fair use: at most ``conversions_at_once`` of one owner's jobs are in the `video` queue (or
converting) at a time; the rest wait in MongoDB, and each job that ends dispatches the owner's
next one. So one owner's backlog never stands in front of everyone else's uploads.
"""

import enum
import logging
import random
import time
import uuid
from dataclasses import dataclass, field

import pymongo
from pymongo.errors import DuplicateKeyError

from common import messages, topology
from common.settings import LifecycleSettings
from common.store import MP3S, VIDEOS, Store, now, object_id

log = logging.getLogger(__name__)


class Status(enum.StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"  # stored; waiting for its turn or in the `video` queue
    CONVERTING = "converting"  # claimed by a converter
    DONE = "done"  # the MP3 is ready until ``expires_at``
    FAILED = "failed"  # could not be converted; ``error`` says why
    EXPIRED = "expired"  # done, and the MP3 has since been deleted


ACTIVE = (Status.QUEUED, Status.CONVERTING)
# The uploads being received, counted against the quotas: one document per owner,
# {"_id": owner, "version", "uploads": {job id: {"size", "updated_at"}}, "updated_at"}.
UPLOADS = "uploads"
UPLOAD_STALE_SECONDS = 600.0  # an upload not heard of for this long is no longer counted
CLAIM_ATTEMPTS = 100  # times an upload may find its owner's uploads changed under it (Contended)


class Cancelled(Exception):
    """The job was deleted while it was being converted."""


class OverLimit(Exception):
    """An upload does not fit in its owner's limits (``reserve``, ``resize``): ``limit`` is
    ``active_jobs`` or ``bytes``; ``usage`` is what the owner has without this upload."""

    def __init__(self, limit: str, usage: "Usage"):
        super().__init__(f"over the owner's limit of {limit}")
        self.limit, self.usage = limit, usage


class Contended(Exception):
    """So many of one owner's uploads were counted at once that this one could not be (try
    again)."""


@dataclass
class Usage:
    """What one owner has stored and waiting."""

    bytes: int = 0  # videos waiting or converting, plus MP3s kept
    active_jobs: int = 0  # queued or converting
    counts: dict = field(default_factory=lambda: {status.value: 0 for status in Status})


class Jobs:
    """The jobs collection and the files it owns, changed only through transitions."""

    def __init__(self, store: Store, settings: LifecycleSettings | None = None):
        self._store = store
        self._jobs = store.jobs
        self._uploads = store.db[UPLOADS]
        self.settings = settings or LifecycleSettings()

    # -- reading ------------------------------------------------------------------------------
    def get(self, job_id, owner: str | None = None) -> dict | None:
        """The job with this id (and owner, when given), or None."""
        oid = object_id(job_id)
        if oid is None:
            return None
        query = {"_id": oid}
        if owner is not None:
            query["owner"] = owner
        return self._jobs.find_one(query)

    def of_owner(self, owner: str, limit: int = 200) -> list[dict]:
        """The owner's jobs, newest first."""
        return list(self._jobs.find({"owner": owner}).sort("created_at", -1).limit(limit))

    def by_mp3(self, mp3_fid) -> dict | None:
        """The job that made (or made and expired) this MP3, or None."""
        oid = object_id(mp3_fid)
        # `$in`, not equality: some MongoDB-compatible servers (nx-27017) match an ObjectId
        # stored outside `_id` only that way. MongoDB treats both the same.
        return None if oid is None else self._jobs.find_one({"mp3_fid": {"$in": [oid]}})

    def usage(self, owner: str) -> Usage:
        """What ``owner`` stores now, and how many of their jobs are waiting or converting;
        their uploads being received count as jobs waiting, with what they were counted for
        (``reserve``, ``resize``)."""
        return self._usage(owner, self._uploads.find_one({"_id": owner}))

    def _usage(self, owner: str, uploads_doc: dict | None, leave_out: str | None = None) -> Usage:
        """``usage`` with the owner's uploads in progress as read in ``uploads_doc`` (read
        before the jobs), but for the upload ``leave_out``."""
        usage = Usage()
        # Uploads first, then jobs: one that becomes a job meanwhile is seen at least once,
        # and counted once.
        uploads = {key: size for key, size in _in_progress(uploads_doc).items()
                   if key != leave_out}
        for job in self._jobs.find({"owner": owner},
                                   {"status": 1, "size": 1, "mp3_size": 1}):
            uploads.pop(str(job["_id"]), None)
            usage.counts[job["status"]] = usage.counts.get(job["status"], 0) + 1
            if job["status"] in ACTIVE:
                usage.active_jobs += 1
                usage.bytes += int(job.get("size") or 0)
            elif job["status"] == Status.DONE:
                usage.bytes += int(job.get("mp3_size") or 0)
        usage.active_jobs += len(uploads)
        usage.bytes += sum(uploads.values())
        return usage

    def queued_summary(self, timeout: float = 2.0) -> tuple[int, float | None]:
        """How many jobs are queued, and when the oldest of them was created (None: none);
        raises when MongoDB does not answer within ``timeout`` seconds (for the metrics)."""
        query = {"status": Status.QUEUED.value}
        with pymongo.timeout(timeout):
            count = self._jobs.count_documents(query)
            oldest = self._jobs.find_one(query, {"created_at": 1},
                                         sort=[("created_at", pymongo.ASCENDING)])
        return count, (oldest or {}).get("created_at")

    def owners(self) -> list[str]:
        """Everyone who has a job."""
        return sorted(self._jobs.distinct("owner"))

    # -- upload and dispatch ------------------------------------------------------------------
    def reserve(self, job_id, owner: str, size: int, max_active: int | None = None,
                max_bytes: int | None = None) -> Usage:
        """Count an upload about to be received, as a job waiting of ``size`` bytes, against
        its owner's quotas (``usage``) until its job is recorded (``create``) or it is refused
        (``release``) — if it fits: with it, at most ``max_active`` jobs waiting or converting
        and ``max_bytes`` stored, everything of the owner's counted, their other uploads in
        progress too. Checked and recorded at once (see ``_claim``): uploads sent together
        take what is free one after the other, so as many fit as there is room for, and no
        more. Returns the owner's usage without this upload; raises OverLimit when it does not
        fit (nothing is recorded), Contended when it could not be counted."""
        return self._claim(owner, str(object_id(job_id)), size, max_active, max_bytes)

    def resize(self, job_id, owner: str, size: int, max_bytes: int | None = None) -> None:
        """Record how much of the upload has come so far (and that it is still coming). More
        than it was counted for is checked like ``reserve``: OverLimit when the owner's
        storage would pass ``max_bytes`` (it is then still counted as before)."""
        key, moment = str(object_id(job_id)), now()
        shrunk = self._uploads.update_one(
            {"_id": owner, f"uploads.{key}.size": {"$gte": int(size)}},
            {"$set": {f"uploads.{key}.size": int(size), f"uploads.{key}.updated_at": moment,
                      "updated_at": moment}})
        if not shrunk.matched_count:  # growing (or no longer counted at all)
            self._claim(owner, key, size, None, max_bytes)

    def release(self, job_id, owner: str) -> None:
        """Stop counting the upload: it was refused or broke off (``create`` calls it too)."""
        self._uploads.update_one({"_id": owner},
                                 {"$unset": {f"uploads.{object_id(job_id)}": ""}})

    def _claim(self, owner: str, key: str, size: int, max_active: int | None,
               max_bytes: int | None) -> Usage:
        """Count upload ``key`` for ``size`` bytes if the owner's limits allow it. Their
        uploads in progress are one document, written back only if no one changed it since it
        was read (compare-and-set on its ``version``) and read again otherwise: of uploads
        checked at once, each is checked against all those counted before it, and only them
        (a refusal writes nothing). Counts shrink, uploads become jobs and jobs end without a
        new version: that only ever leaves less in use than was checked."""
        for attempt in range(CLAIM_ATTEMPTS):
            doc = self._uploads.find_one({"_id": owner})
            usage = self._usage(owner, doc, leave_out=key)
            if max_active is not None and usage.active_jobs >= max_active:
                raise OverLimit("active_jobs", usage)
            if max_bytes is not None and usage.bytes + int(size) > max_bytes:
                raise OverLimit("bytes", usage)
            if self._write_claim(owner, doc, key, int(size)):
                return usage
            time.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))
        raise Contended(f"{CLAIM_ATTEMPTS} attempts to count an upload lost to others")

    def _write_claim(self, owner: str, doc: dict | None, key: str, size: int) -> bool:
        """Write upload ``key``'s count into the owner's document as read (``doc``; None: it
        did not exist), dropping the uploads no longer heard of; False if it changed since."""
        # A version is never reused: a document deleted and made anew cannot pass for the one
        # read.
        moment, version = now(), uuid.uuid4().hex
        entry = {"size": size, "updated_at": moment}
        if doc is None:
            try:
                self._uploads.insert_one({"_id": owner, "version": version,
                                          "uploads": {key: entry}, "updated_at": moment})
            except DuplicateKeyError:
                return False
            return True
        update = {"$set": {"version": version, f"uploads.{key}": entry, "updated_at": moment}}
        gone = set(doc.get("uploads") or {}) - set(_in_progress(doc)) - {key}
        if gone:
            update["$unset"] = {f"uploads.{stale}": "" for stale in gone}
        return self._uploads.update_one({"_id": owner, "version": doc.get("version")},
                                        update).matched_count == 1

    def create(self, job_id, owner: str, video_fid, filename: str, content_type: str,
               size: int, publisher, options: dict | None = None) -> dict:
        """Record a stored upload as a queued job, with its conversion options
        (``common.options``), and dispatch it if the owner has room.

        Raises what the publish raises; the caller then removes the job (``delete``).
        """
        moment = now()
        doc = {"_id": object_id(job_id), "owner": owner, "video_fid": video_fid,
               "filename": filename, "content_type": content_type, "size": size,
               "options": options or {}, "status": Status.QUEUED.value, "progress": 0,
               "attempts": 0, "dispatched_at": None, "published_at": None,
               "created_at": moment, "updated_at": moment}
        self._jobs.insert_one(doc)
        self.release(job_id, owner)  # counted as a job from now on
        self.dispatch(owner, publisher)
        return doc

    def dispatch(self, owner: str, publisher) -> int:
        """Put the owner's oldest waiting jobs on the `video` queue while they have room."""
        sent = 0
        while self._in_flight(owner) < self.settings.conversions_at_once:
            job = self._jobs.find_one_and_update(
                {"owner": owner, "status": Status.QUEUED.value, "dispatched_at": None},
                {"$set": {"dispatched_at": now(), "updated_at": now()}},
                sort=[("created_at", pymongo.ASCENDING)],
                return_document=pymongo.ReturnDocument.AFTER)
            if job is None:
                break
            try:
                self._publish_video(job, publisher)
            except BaseException:
                # Give the place back, so the next finish or upload (or the sweep) sends it.
                self._set(job["_id"], {"dispatched_at": None},
                          where={"status": Status.QUEUED.value, "published_at": None})
                raise
            sent += 1
        return sent

    def _in_flight(self, owner: str) -> int:
        return self._jobs.count_documents(
            {"owner": owner, "status": {"$in": [s.value for s in ACTIVE]},
             "dispatched_at": {"$ne": None}})

    def _publish_video(self, job: dict, publisher) -> None:
        """Publish the job's `video` message, carrying its attempts so far, and mark it sent."""
        message = messages.VideoMessage(str(job["_id"]), str(job["video_fid"]), job["owner"])
        headers = {"x-attempt": job["attempts"]} if job.get("attempts") else None
        publisher.publish(topology.VIDEO, messages.encode(message), headers=headers)
        self._set(job["_id"], {"published_at": now()})

    # -- conversion ---------------------------------------------------------------------------
    def claim(self, job_id, token: str, attempt: int) -> dict | None:
        """Take a queued or interrupted job for conversion; None if it is final or gone."""
        return self._jobs.find_one_and_update(
            {"_id": object_id(job_id), "status": {"$in": [s.value for s in ACTIVE]}},
            {"$set": {"status": Status.CONVERTING.value, "claim": token, "progress": 0,
                      "attempts": attempt, "updated_at": now()}},
            return_document=pymongo.ReturnDocument.AFTER)

    def progress(self, job_id, token: str, percent: float) -> None:
        """Record progress; raises Cancelled when the job was deleted (or taken over)."""
        if not self._set(job_id, {"progress": round(percent, 1)},
                         where={"status": Status.CONVERTING.value, "claim": token}):
            raise Cancelled("the job was deleted while it was being converted")

    def finish(self, job: dict, token: str, mp3_fid, mp3_size: int, duration: float,
               publisher, details: dict | None = None) -> bool:
        """Mark the job done with its MP3 (and ``details`` of it: mode, bitrate, cover,
        chapters), drop its video, publish the result, dispatch the owner's next job. False
        (nothing changed) when the claim was lost or the job deleted: the caller discards its
        MP3."""
        expires = now() + self.settings.mp3_retention_seconds
        if not self._set(job["_id"],
                         {**(details or {}), "status": Status.DONE.value, "progress": 100,
                          "mp3_fid": mp3_fid, "mp3_size": mp3_size,
                          "duration": round(duration, 3), "error": None,
                          "expires_at": round(expires, 3)},
                         where={"status": Status.CONVERTING.value, "claim": token}):
            return False
        self._drop_video(job)
        self._publish_result(job, mp3_fid, None, publisher)
        self.dispatch(job["owner"], publisher)
        return True

    def fail(self, job_id, reason: str, publisher, permanent: bool = True,
             where: dict | None = None) -> bool:
        """Mark the job failed, publish the failure for its email, dispatch the owner's next.
        False (nothing done) when it is no longer waiting or converting, or does not match
        ``where`` (the sweep's compare-and-set on what it read).

        The video is dropped when the file itself is at fault (``permanent``); after retries
        ran out (an outage) it is kept until the sweep's retention, so it can be re-driven.
        """
        job = self._jobs.find_one_and_update(
            {"_id": object_id(job_id), "status": {"$in": [s.value for s in ACTIVE]},
             **(where or {})},
            {"$set": {"status": Status.FAILED.value, "error": reason, "updated_at": now()}},
            return_document=pymongo.ReturnDocument.AFTER)
        if job is None:
            return False
        if permanent:
            self._drop_video(job)
        self._publish_result(job, None, reason, publisher)
        self.dispatch(job["owner"], publisher)
        return True

    def republish_result(self, job: dict, publisher) -> None:
        """A redelivered message for a finished job: publish its result only if it never went,
        and dispatch the owner's next job (the first try may have failed before it could)."""
        if job.get("result_published_at") or job["status"] == Status.EXPIRED:
            log.info("job already finished; nothing to do", extra={"status": job["status"]})
        else:
            self._publish_result(job, job.get("mp3_fid"), job.get("error"), publisher)
        self.dispatch(job["owner"], publisher)

    def _publish_result(self, job: dict, mp3_fid, error: str | None, publisher) -> None:
        result = messages.Mp3Message(
            job_id=str(job["_id"]), video_fid=str(job["video_fid"]), owner=job["owner"],
            mp3_fid=str(mp3_fid) if mp3_fid else None, error=error)
        publisher.publish(topology.MP3, messages.encode(result))
        self._set(job["_id"], {"result_published_at": now()})

    def _drop_video(self, job: dict, even_if_kept: bool = False) -> bool:
        """Delete the job's video; True when this call marked it deleted (not already so)."""
        if job.get("video_deleted_at") or (self.settings.keep_source_videos
                                           and not even_if_kept):
            return False
        self._store.delete_file(VIDEOS, job["video_fid"])
        return self._set(job["_id"], {"video_deleted_at": now()},
                         where={"video_deleted_at": None})

    # -- notification -------------------------------------------------------------------------
    def mark_notified(self, job_id, outcome: str) -> None:
        """Record what became of the job's email: ``sent`` or why it was skipped."""
        fields = {"notification": outcome}
        if outcome == "sent":
            fields["notified_at"] = now()
        self._set(job_id, fields)

    # -- deleting and expiring ----------------------------------------------------------------
    def delete(self, job_id, owner: str | None, publisher=None) -> bool:
        """Remove the job, its video and its MP3. A converter working on it notices and stops
        (``progress`` raises Cancelled; ``finish`` refuses). False when there was no such job."""
        query = {"_id": object_id(job_id)}
        if owner is not None:
            query["owner"] = owner
        job = self._jobs.find_one_and_delete(query)
        if job is None:
            return False
        self._remove_files(job)
        log.info("job deleted", extra={"job_id": str(job["_id"]), "status": job["status"]})
        if publisher is not None and job["status"] in ACTIVE:
            self.dispatch(job["owner"], publisher)
        return True

    def _remove_files(self, job: dict) -> None:
        self._store.delete_file(VIDEOS, job.get("video_fid"))
        self._store.delete_file(MP3S, job.get("mp3_fid"))
        for bucket in (VIDEOS, MP3S):  # a file being written for it, not yet recorded
            for doc in self._store.files(bucket).find({"metadata.job_id": str(job["_id"])},
                                                      {"_id": 1}):
                self._store.delete_file(bucket, doc["_id"])

    def delete_owner(self, owner: str, created_before: float | None = None) -> int:
        """Remove every job and file of ``owner`` (made before ``created_before``, if given)."""
        query = {"owner": owner}
        if created_before is not None:
            query["created_at"] = {"$lt": created_before}
        removed = 0
        for job in list(self._jobs.find(query, {"_id": 1})):
            removed += self.delete(job["_id"], owner)
        return removed

    def hand_over(self, owner: str, new_owner: str) -> int:
        """Give every job and file of ``owner`` to ``new_owner`` (jobs of an earlier release,
        owned by an address, go to that address's account id); returns how many jobs."""
        moved = self._jobs.update_many({"owner": owner}, {"$set": {"owner": new_owner}})
        for bucket in (VIDEOS, MP3S):
            self._store.files(bucket).update_many({"metadata.owner": owner},
                                                  {"$set": {"metadata.owner": new_owner}})
        log.info("jobs handed over", extra={"jobs": moved.modified_count})
        return moved.modified_count

    def expire(self) -> dict:
        """Delete MP3s past ``expires_at`` (the job becomes `expired`), and the videos kept for
        failed jobs once they are as old as the MP3 retention."""
        moment = now()
        counts = {"expired": 0, "failed_videos_dropped": 0}
        for job in list(self._jobs.find({"status": Status.DONE.value,
                                         "expires_at": {"$lt": moment}})):
            if self._set(job["_id"], {"status": Status.EXPIRED.value},
                         where={"status": Status.DONE.value}):
                self._store.delete_file(MP3S, job.get("mp3_fid"))
                self._drop_video(job, even_if_kept=True)  # the job's files all go now
                counts["expired"] += 1
        stale = moment - self.settings.mp3_retention_seconds
        for job in list(self._jobs.find({"status": Status.FAILED.value,
                                         "video_deleted_at": None,
                                         "updated_at": {"$lt": stale}})):
            # counted by the sweep that marked it (two at once both find it)
            counts["failed_videos_dropped"] += self._drop_video(job)
        return counts

    # -- recovery (the sweep) -----------------------------------------------------------------
    def recover_unpublished(self, older_than: float, publisher) -> dict:
        """Publish jobs whose message never went out; fail those whose upload never finished;
        dispatch owners who have room (a lost race between two uploads or finishes).

        Each job is taken first by a compare-and-set of its ``updated_at`` as read (which moves
        it on): of two sweeps that read it, one publishes it and the other leaves it. A publish
        that then fails leaves it for a sweep ``older_than`` later."""
        counts = {"republished": 0, "failed": 0, "dispatched": 0}
        cutoff = now() - older_than
        for job in list(self._jobs.find({"status": Status.QUEUED.value,
                                         "dispatched_at": {"$ne": None}, "published_at": None,
                                         "updated_at": {"$lt": cutoff}})):
            unchanged = {"status": Status.QUEUED.value, "published_at": None,
                         "updated_at": job["updated_at"]}
            if self._store.find_file(VIDEOS, job["video_fid"]) is None:
                counts["failed"] += self.fail(
                    job["_id"], "the upload was interrupted before it was stored", publisher,
                    where=unchanged)
            elif self._set(job["_id"], {}, where=unchanged):
                self._publish_video(job, publisher)
                counts["republished"] += 1
        waiting = self._jobs.distinct("owner", {"status": Status.QUEUED.value,
                                                "dispatched_at": None})
        for owner in waiting:
            counts["dispatched"] += self.dispatch(owner, publisher)
        return counts

    def recover_stuck(self, older_than: float, max_attempts: int, publisher) -> dict:
        """Re-queue jobs whose converter stopped responding; fail them after the attempt limit."""
        counts = {"requeued": 0, "failed": 0}
        cutoff = now() - older_than
        for job in list(self._jobs.find({"status": Status.CONVERTING.value,
                                         "updated_at": {"$lt": cutoff}})):
            unchanged = {"status": Status.CONVERTING.value, "updated_at": job["updated_at"]}
            if job.get("attempts", 0) >= max_attempts:
                # only if still silent: not when its converter spoke meanwhile, nor twice
                counts["failed"] += self.fail(
                    job["_id"], f"gave up after {job['attempts']} attempts: the converter "
                                "stopped responding", publisher, permanent=False,
                    where=unchanged)
            elif self._set(job["_id"], {"status": Status.QUEUED.value, "progress": 0,
                                        "published_at": None}, where=unchanged):
                self._publish_video(job, publisher)
                counts["requeued"] += 1
        return counts

    def remove_orphans(self, older_than: float) -> dict:
        """Delete files no job refers to (a gateway stopped between storing a video and
        recording its job, a converter between storing an MP3 and finishing) and chunks whose
        file was never completed, once older than ``older_than`` seconds."""
        cutoff = now() - older_than
        counts = {"orphan_files": 0, "orphan_chunks": 0}
        for bucket, ref in ((VIDEOS, "video_fid"), (MP3S, "mp3_fid")):
            for doc in list(self._store.files(bucket).find({}, {"_id": 1, "metadata": 1})):
                if doc["_id"].generation_time.timestamp() >= cutoff:
                    continue
                job_id = (doc.get("metadata") or {}).get("job_id")
                job = self.get(job_id) if job_id else None
                if job is None or job.get(ref) != doc["_id"]:
                    self._store.delete_file(bucket, doc["_id"])
                    counts["orphan_files"] += 1
            for files_id in self._store.chunks(bucket).distinct("files_id"):
                if (files_id.generation_time.timestamp() < cutoff
                        and self._store.files(bucket).find_one({"_id": files_id}) is None):
                    self._store.delete_file(bucket, files_id)
                    counts["orphan_chunks"] += 1
        counts["stale_uploads"] = self._remove_stale_uploads()
        return counts

    def _remove_stale_uploads(self) -> int:
        """Forget uploads not heard of for UPLOAD_STALE_SECONDS (a gateway stopped while
        receiving them): the documents of owners with nothing written since then go, unless
        they changed meanwhile. Returns how many uploads were still in them."""
        cutoff = now() - UPLOAD_STALE_SECONDS
        removed = 0
        for doc in list(self._uploads.find({"updated_at": {"$lt": cutoff}})):
            query = {"_id": doc["_id"], "updated_at": {"$lt": cutoff}}
            if "version" in doc:
                query["version"] = doc["version"]
            if self._uploads.delete_one(query).deleted_count:
                # an earlier release's record of one upload has no "uploads"
                removed += len(doc.get("uploads") or {}) if "version" in doc else 1
        return removed

    def redrive(self, job_id, queue: str, publisher) -> bool:
        """Try a dead-lettered job again: a failed conversion goes back on `video` with fresh
        attempts, an email that could not be sent back on `mp3`. False (the dead letter is
        dropped) when there is nothing left to retry: the job or its video is gone, or it
        already went through."""
        job = self.get(job_id)
        if job is None:
            return False
        if queue == topology.VIDEO:
            if job["status"] != Status.FAILED or job.get("video_deleted_at"):
                return False
            job = self._jobs.find_one_and_update(
                {"_id": job["_id"], "status": Status.FAILED.value},
                {"$set": {"status": Status.QUEUED.value, "error": None, "progress": 0,
                          "attempts": 0, "dispatched_at": now(), "published_at": None,
                          "result_published_at": None, "notified_at": None,
                          "notification": None, "updated_at": now()}},
                return_document=pymongo.ReturnDocument.AFTER)
            if job is None:
                return False
            self._publish_video(job, publisher)
            return True
        if job["status"] not in (Status.DONE, Status.FAILED) or job.get("notified_at"):
            return False
        self._publish_result(job, job.get("mp3_fid"), job.get("error"), publisher)
        return True

    # -- after a restore (python -m ops restore) ----------------------------------------------
    def reconcile_restored(self) -> dict:
        """Make jobs restored from a backup agree with the files restored with them (the
        collections are copied one after the other): a done job whose MP3 is missing or
        incomplete becomes expired, a queued or converting job whose video is, failed; every
        other queued or converting job waits for the next sweep to dispatch it again (its
        message, if one was sent, went with the broker it was sent to). Files no job refers
        to are left to the sweep's orphan removal. Nothing is published."""
        counts = {"expired": 0, "failed": 0, "requeued": 0}
        for job in list(self._jobs.find({"status": Status.DONE.value})):
            if not self._file_complete(MP3S, job.get("mp3_fid")) and self._set(
                    job["_id"], {"status": Status.EXPIRED.value,
                                 "error": "its MP3 was not in the backup the service was "
                                          "restored from"},
                    where={"status": Status.DONE.value}):
                self._store.delete_file(MP3S, job.get("mp3_fid"))
                counts["expired"] += 1
        for job in list(self._jobs.find({"status": {"$in": [s.value for s in ACTIVE]}})):
            if not self._file_complete(VIDEOS, job.get("video_fid")):
                if self._set(job["_id"], {"status": Status.FAILED.value,
                                          "error": "its video was not in the backup the service "
                                                   "was restored from: upload it again"}):
                    self._drop_video(job, even_if_kept=True)
                    counts["failed"] += 1
            elif self._set(job["_id"], {"status": Status.QUEUED.value, "progress": 0,
                                        "claim": None, "dispatched_at": None,
                                        "published_at": None}):
                counts["requeued"] += 1
        return counts

    def _file_complete(self, bucket: str, fid) -> bool:
        """True when the GridFS file exists with every chunk its length needs."""
        doc = self._store.find_file(bucket, fid)
        if doc is None:
            return False
        expected = -(-int(doc.get("length") or 0) // int(doc.get("chunkSize") or 1))
        # by files_id only: some compatible servers (nx-27017) answer chunk queries no other way
        found = len(list(self._store.chunks(bucket).find({"files_id": doc["_id"]}, {"n": 1})))
        return found >= expected

    # -- the one write ------------------------------------------------------------------------
    def _set(self, job_id, fields: dict, where: dict | None = None) -> bool:
        """Set ``fields`` (and ``updated_at``) on the job if it matches ``where``."""
        query = {"_id": object_id(job_id), **(where or {})}
        result = self._jobs.update_one(query, {"$set": {**fields, "updated_at": now()}})
        return result.matched_count == 1


def _in_progress(uploads_doc: dict | None) -> dict[str, int]:
    """The uploads of an owner's document (``UPLOADS``) heard of lately: job id -> size."""
    fresh = now() - UPLOAD_STALE_SECONDS
    return {key: int(upload.get("size") or 0)
            for key, upload in ((uploads_doc or {}).get("uploads") or {}).items()
            if (upload.get("updated_at") or 0) > fresh}
