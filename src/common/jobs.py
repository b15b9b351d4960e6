"""A job's whole life in one place: its states and every transition between them.

    upload ─▶ queued ─(dispatch)─▶ `video` queue ─(claim)─▶ converting ─(finish)─▶ done
                                                              ├─(fail)──▶ failed
                       queued ◀─(to_long_lane)─────────────────┘  on `video.long`, for good
    done ─(expire, after MP3_RETENTION_HOURS)─▶ expired
    any state ─(delete)─▶ gone: a job being converted is cancelled (its converter notices)

Each transition does its database write, its publish and its "published" mark together. This
module is the only code that writes the `jobs` collection or publishes to `video`, `mp3` and
`webhooks` (the job events);
the services and the operator commands call it. Finding the jobs that need upkeep (stuck,
unpublished, expired, orphaned files, after a restore) is the sweep's, in ``ops.upkeep``; what
an owner uses against their quotas, uploads being received included, is ``common.quotas``'s.

Usage: what one job counts against its owner's quotas is one rule, ``usage_of`` (next to the
states). Every write that changes a job's status, size, MP3 size or owner goes through
``_change`` (or ``create``, ``delete``), which reads the job as it was before the write (the
compare-and-set's own answer) and adds ``usage_of(after) - usage_of(before)`` to the owner's
usage document (``common.usage.add``) once the write succeeded: no transition writes its own
deltas. A process that dies between the two leaves the document off until the sweep reconciles
it (``ops.upkeep.reconcile_usage``).

Lanes: a job found longer than LONG_JOB_SECONDS is handed to the `video.long` queue and marked
``lane: "long"``; every later publish of it (a retry, the sweep's requeue, a re-drive) goes there
too (``video_queue``), and the converters consume both lanes at once.

Fair use: at most ``conversions_at_once`` of one owner's jobs are in the `video` queue (or
converting) at a time; the rest wait in MongoDB, and each job that ends dispatches the owner's
next one. So one owner's backlog never stands in front of everyone else's uploads.
"""

import enum
import logging

import pymongo
from bson import ObjectId

from common import messages, mongo_compat, topology, usage
from common.mongo_compat import object_id_equals
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


def is_expired(job: dict) -> bool:
    """Whether the job's MP3 is past its retention: `expired`, or `done` past ``expires_at``
    even before the sweep marks it (it is then answered as if deleted)."""
    if job["status"] == Status.EXPIRED:
        return True
    expires_at = job.get("expires_at")
    return job["status"] == Status.DONE and expires_at is not None and expires_at < now()


ACTIVE = (Status.QUEUED, Status.CONVERTING)
# the job fields ``usage_of`` reads: a write that sets one of them changes its owner's usage
COUNTED_FIELDS = frozenset({"status", "size", "mp3_size", "owner"})


def usage_of(job: dict | None) -> dict[str, int]:
    """What one job counts in its owner's usage (``common.usage``): one in ``jobs.<status>``;
    while queued or converting, one active job and its video's ``size`` in bytes; once done, its
    MP3's ``mp3_size``; failed and expired jobs hold nothing against the quotas. None (no job):
    nothing."""
    if job is None:
        return {}
    status = str(job["status"])
    counted = {f"jobs.{status}": 1}
    if status in ACTIVE:
        counted.update(active_jobs=1, bytes=int(job.get("size") or 0))
    elif status == Status.DONE:
        counted["bytes"] = int(job.get("mp3_size") or 0)
    return counted


DISPATCH_RACES = 20  # waiting jobs one dispatch may find sent by another before it leaves it be
PAGE_ORDER = [("created_at", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)]  # an owner's list


LONG_LANE = "long"  # a job's ``lane`` once handed to `video.long`


def video_queue(job: dict) -> str:
    """The queue a job's `video` message goes to: its lane's."""
    return topology.VIDEO_LONG if job.get("lane") == LONG_LANE else topology.VIDEO


class Cancelled(Exception):
    """The job was deleted while it was being converted."""


class Jobs:
    """The jobs collection and the files it owns, changed only through transitions."""

    def __init__(self, store: Store, settings: LifecycleSettings | None = None):
        self._store = store
        self._jobs = store.jobs
        self.settings = settings or LifecycleSettings()

    @property
    def store(self) -> Store:
        """Where the jobs and their files are (read by the upkeep, ``ops.upkeep``)."""
        return self._store

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
        return self.page(owner, limit)[0]

    def page(self, owner: str, limit: int, after: tuple[float, ObjectId] | None = None
             ) -> tuple[list[dict], bool]:
        """Up to ``limit`` of the owner's jobs, newest first (by ``created_at``, then ``_id``,
        so jobs created at the same instant keep one order), starting after the job whose
        ``(created_at, _id)`` is ``after`` (None: from the newest); and whether more follow."""
        query: dict = {"owner": owner}
        ties = 0
        if after is not None:
            created_at, oid = after
            # Ranges on created_at alone (nx-27017 compares _id in Python, mongo_compat): the
            # jobs created at that instant are all read again, and those up to ``after`` left out.
            query["created_at"] = {"$lte": created_at}
            ties = mongo_compat.count(self._jobs, {"owner": owner, "created_at": created_at})
        found = mongo_compat.find_sorted(self._jobs, query, PAGE_ORDER, limit + 1 + ties)
        if after is not None:
            found = [job for job in found if (job["created_at"], job["_id"]) < after]
        return found[:limit], len(found) > limit

    def by_mp3(self, mp3_fid) -> dict | None:
        """The job that made (or made and expired) this MP3, or None."""
        oid = object_id(mp3_fid)
        return None if oid is None else self._jobs.find_one({"mp3_fid": object_id_equals(oid)})

    def queued_summary(self, timeout: float = 2.0) -> tuple[int, float | None]:
        """How many jobs are queued, and when the oldest of them was created (None: none);
        raises when MongoDB does not answer within ``timeout`` seconds (for the metrics)."""
        query = {"status": Status.QUEUED.value}
        with pymongo.timeout(timeout):
            count = mongo_compat.count(self._jobs, query)
            oldest = mongo_compat.find_sorted(self._jobs, query,
                                              [("created_at", pymongo.ASCENDING)], 1)
        return count, oldest[0]["created_at"] if oldest else None

    def owners(self) -> list[str]:
        """Everyone who has a job."""
        return sorted(self._jobs.distinct("owner"))

    # -- upload and dispatch ------------------------------------------------------------------
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
        self._count(None, doc)
        self.dispatch(owner, publisher)
        return doc

    def dispatch(self, owner: str, publisher) -> int:
        """Put the owner's oldest waiting jobs on the `video` queue while they have room.

        Their jobs in flight are counted again before each one: other dispatches for the same
        owner (an upload, a converter that finished one of their jobs) may run at the same
        time, and a count made before they sent would let more through than the room. The
        waiting job is looked for first: most dispatches (a converter that finished the owner's
        only job) find none and count nothing (each query costs nx-27017 a count of the whole
        collection, ``common.mongo_compat``)."""
        sent = races = 0
        waiting = {"owner": owner, "status": Status.QUEUED.value, "dispatched_at": None}
        while True:
            oldest = mongo_compat.find_sorted(self._jobs, waiting,
                                              [("created_at", pymongo.ASCENDING)], 1)
            if not oldest or self._in_flight(owner) >= self.settings.conversions_at_once:
                break
            job = self._jobs.find_one_and_update(
                {**waiting, "_id": oldest[0]["_id"]},
                {"$set": {"dispatched_at": now(), "updated_at": now()}},
                return_document=pymongo.ReturnDocument.AFTER)
            if job is None:  # another dispatch sent it (or it was deleted): look again
                races += 1
                if races > DISPATCH_RACES:
                    break  # the others dispatching are sending this owner's jobs
                continue
            try:
                self.publish_video(job, publisher)
            except BaseException:
                # Give the place back, so the next finish or upload (or the sweep) sends it.
                self._set(job["_id"], {"dispatched_at": None},
                          where={"status": Status.QUEUED.value, "published_at": None})
                raise
            sent += 1
        return sent

    def _in_flight(self, owner: str) -> int:
        """How many of the owner's jobs are sent and not finished (one count per status:
        mongo_compat)."""
        return sum(mongo_compat.count(self._jobs, {"owner": owner, "status": status.value,
                                                   "dispatched_at": {"$ne": None}})
                   for status in ACTIVE)

    def publish_video(self, job: dict, publisher) -> None:
        """Publish the job's `video` message on its lane's queue, carrying its attempts so
        far, and mark it sent."""
        message = messages.VideoMessage(str(job["_id"]), str(job["video_fid"]), job["owner"])
        headers = {"x-attempt": job["attempts"]} if job.get("attempts") else None
        publisher.publish(video_queue(job), messages.encode(message), headers=headers)
        self._set(job["_id"], {"published_at": now()})

    # -- conversion ---------------------------------------------------------------------------
    def claim(self, job_id, token: str, attempt: int) -> dict | None:
        """Take a queued or interrupted job for conversion; None if it is final or gone."""
        return self._change(
            {"_id": object_id(job_id), "status": {"$in": [s.value for s in ACTIVE]}},
            {"status": Status.CONVERTING.value, "claim": token, "progress": 0,
             "attempts": attempt})

    def to_long_lane(self, job: dict, token: str, publisher) -> bool:
        """Hand a claimed job over to the `video.long` queue: waiting again (still counted
        among its owner's jobs in flight), its claim released, its attempt not spent (the
        long lane's delivery is the same attempt). False when the claim was lost or the job
        deleted meanwhile (nothing to hand over)."""
        earlier = max(0, job["attempts"] - 1)
        if not self._set(job["_id"], {"status": Status.QUEUED.value, "claim": None,
                                      "progress": 0, "lane": LONG_LANE, "attempts": earlier,
                                      "published_at": None},
                         where={"status": Status.CONVERTING.value, "claim": token}):
            return False
        self.publish_video({**job, "lane": LONG_LANE, "attempts": earlier}, publisher)
        return True

    def progress(self, job_id, token: str, percent: float) -> None:
        """Record progress; raises Cancelled when the job was deleted (or taken over)."""
        if not self._set(job_id, {"progress": round(percent, 1)},
                         where={"status": Status.CONVERTING.value, "claim": token}):
            raise Cancelled("the job was deleted while it was being converted")

    def finish(self, job: dict, token: str, mp3_fid, mp3_size: int, duration: float,
               publisher, details: dict | None = None) -> bool:
        """Mark the job done with its MP3 (and ``details`` of it: mode, bitrate, cover and the
        id of its cover file, ``cover_fid``, chapters), publish the result, dispatch the owner's
        next job, then drop its video. False (nothing changed) when the claim was lost or the
        job deleted: the caller discards its MP3 and cover (``remove_outputs``).

        The video goes last: deleting it takes as long as storing it did (0.4 s for 95 MiB on
        nx-27017), and the owner's email and next job need not wait for it. A converter stopped
        before then leaves the video to the message's redelivery (``republish_result``)."""
        expires = now() + self.settings.mp3_retention_seconds
        if not self._set(job["_id"],
                         {**(details or {}), "status": Status.DONE.value, "progress": 100,
                          "mp3_fid": mp3_fid, "mp3_size": mp3_size,
                          "duration": round(duration, 3), "error": None,
                          "expires_at": round(expires, 3)},
                         where={"status": Status.CONVERTING.value, "claim": token}):
            return False
        self._publish_result(job, mp3_fid, None, publisher)
        self.dispatch(job["owner"], publisher)
        self.drop_video(job)
        return True

    def fail(self, job_id, reason: str, publisher, permanent: bool = True,
             where: dict | None = None) -> bool:
        """Mark the job failed, publish the failure for its email, dispatch the owner's next.
        False (nothing done) when it is no longer waiting or converting, or does not match
        ``where`` (the sweep's compare-and-set on what it read).

        The video is dropped when the file itself is at fault (``permanent``); after retries
        ran out (an outage) it is kept until the sweep's retention, so it can be re-driven.
        """
        job = self._change(
            {"_id": object_id(job_id), "status": {"$in": [s.value for s in ACTIVE]},
             **(where or {})},
            {"status": Status.FAILED.value, "error": reason})
        if job is None:
            return False
        self._publish_result(job, None, reason, publisher)
        self.dispatch(job["owner"], publisher)
        if permanent:  # last, as in ``finish`` (a kept video the sweep drops after retention)
            self.drop_video(job)
        return True

    def republish_result(self, job: dict, publisher) -> None:
        """A redelivered message for a finished job: publish its result only if it never went,
        dispatch the owner's next job and drop a done job's video (the first try may have
        stopped before any of them)."""
        if job.get("result_published_at") or job["status"] == Status.EXPIRED:
            log.info("job already finished; nothing to do", extra={"status": job["status"]})
        else:
            self._publish_result(job, job.get("mp3_fid"), job.get("error"), publisher)
        self.dispatch(job["owner"], publisher)
        if job["status"] == Status.DONE:
            self.drop_video(job)

    def _publish_result(self, job: dict, mp3_fid, error: str | None, publisher) -> None:
        result = messages.Mp3Message(
            job_id=str(job["_id"]), video_fid=str(job["video_fid"]), owner=job["owner"],
            mp3_fid=str(mp3_fid) if mp3_fid else None, error=error)
        publisher.publish(topology.MP3, messages.encode(result))
        # the same result for the owner's webhooks, consumed apart from the emails
        self.publish_event("job.failed" if error is not None or not mp3_fid else "job.done",
                           job, publisher)
        self._set(job["_id"], {"result_published_at": now()})

    @staticmethod
    def publish_event(event: str, job: dict, publisher) -> None:
        """Publish a webhook event about ``job`` (``job.done``, ``job.failed``, ``job.expired``)
        to `webhooks`; notification sends it to each endpoint of the owner that asked for it."""
        message = messages.WebhookEvent(type=event, job_id=str(job["_id"]), owner=job["owner"])
        publisher.publish(topology.WEBHOOKS, messages.encode(message))

    def drop_video(self, job: dict, even_if_kept: bool = False) -> bool:
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
        """Remove the job, its video, its MP3 and cover. A converter working on it notices and stops
        (``progress`` raises Cancelled; ``finish`` refuses). False when there was no such job."""
        query = {"_id": object_id(job_id)}
        if owner is not None:
            query["owner"] = owner
        job = self._jobs.find_one_and_delete(query)
        if job is None:
            return False
        self._count(job, None)
        self._remove_files(job)
        log.info("job deleted", extra={"job_id": str(job["_id"]), "status": job["status"]})
        if publisher is not None and job["status"] in ACTIVE:
            self.dispatch(job["owner"], publisher)
        return True

    def _remove_files(self, job: dict) -> None:
        self._store.delete_file(VIDEOS, job.get("video_fid"))
        self.remove_outputs(job)
        for bucket in (VIDEOS, MP3S):  # a file being written for it, not yet recorded
            for doc in self._store.files(bucket).find({"metadata.job_id": str(job["_id"])},
                                                      {"_id": 1}):
                self._store.delete_file(bucket, doc["_id"])

    def delete_owner(self, owner: str, created_before: float | None = None) -> int:
        """Remove every job and file of ``owner`` (made before ``created_before``, if given);
        all of them: their usage document too (a transition still under way may leave a
        ``partial`` one, computed again before it is trusted)."""
        query = {"owner": owner}
        if created_before is not None:
            query["created_at"] = {"$lt": created_before}
        removed = 0
        for job in list(self._jobs.find(query, {"_id": 1})):
            removed += self.delete(job["_id"], owner)
        if created_before is None:
            usage.forget(self._store.db, owner)
        return removed

    def hand_over(self, owner: str, new_owner: str) -> int:
        """Give every job and file of ``owner`` to ``new_owner`` (jobs of an earlier release,
        owned by an address, go to that address's account id); returns how many jobs. One job
        at a time, so that each carries what it counts from one owner's usage to the other's."""
        moved = 0
        for job in list(self._jobs.find({"owner": owner}, {"_id": 1})):
            moved += self._change({"_id": job["_id"], "owner": owner},
                                  {"owner": new_owner}, touch=False) is not None
        for bucket in (VIDEOS, MP3S):
            self._store.files(bucket).update_many({"metadata.owner": owner},
                                                  {"$set": {"metadata.owner": new_owner}})
        log.info("jobs handed over", extra={"jobs": moved})
        return moved

    def expire(self, job: dict, reason: str | None = None, publisher=None) -> bool:
        """A done job's MP3 and cover (``remove_outputs``) are deleted and the job becomes
        `expired`: after its retention, with its video even if kept, or for ``reason`` (then
        they alone go). False when it is no longer done (another sweep expired it, or it was
        deleted). With a ``publisher``, the owner's webhooks hear `job.expired`."""
        fields = {"status": Status.EXPIRED.value}
        if reason is not None:
            fields["error"] = reason
        if not self._set(job["_id"], fields, where={"status": Status.DONE.value}):
            return False
        self.remove_outputs(job)
        if reason is None:
            self.drop_video(job, even_if_kept=True)  # the job's files all go now
        if publisher is not None:
            try:
                self.publish_event("job.expired", job, publisher)
            except Exception:  # noqa: BLE001 - the MP3 is gone all the same; only the event is lost
                log.warning("could not publish the job.expired event", exc_info=True,
                            extra={"job_id": str(job["_id"])})
        return True

    def remove_outputs(self, job: dict) -> None:
        """Delete what the job's conversion made: its MP3 (``mp3_fid``) and its cover picture
        (``cover_fid``); one already gone, or never made, is fine."""
        self._store.delete_file(MP3S, job.get("mp3_fid"))
        self._store.delete_file(MP3S, job.get("cover_fid"))

    # -- recovery (the sweep, ops.upkeep) -----------------------------------------------------
    def republish(self, job: dict, publisher) -> bool:
        """Publish a queued job whose `video` message never went out, unless it changed since
        it was read: the job is first taken by a compare-and-set of its ``updated_at`` (which
        moves it on), so of two sweeps that read it one publishes it."""
        if not self._set(job["_id"], {}, where={"status": Status.QUEUED.value,
                                                "published_at": None,
                                                "updated_at": job["updated_at"]}):
            return False
        self.publish_video(job, publisher)
        return True

    def requeue(self, job: dict, publisher) -> bool:
        """Put a job whose converter stopped responding back on the `video` queue, unless it
        changed since it was read (its converter spoke, or another sweep took it)."""
        if not self._set(job["_id"], {"status": Status.QUEUED.value, "progress": 0,
                                      "published_at": None},
                         where={"status": Status.CONVERTING.value,
                                "updated_at": job["updated_at"]}):
            return False
        self.publish_video(job, publisher)
        return True

    def redrive(self, job_id, queue: str, publisher) -> bool:
        """Try a dead-lettered job again: a failed conversion goes back on its lane's queue
        (``video_queue``) with fresh attempts, an email that could not be sent back on `mp3`.
        False (the dead letter is dropped) when there is nothing left to retry: the job or its
        video is gone, or it already went through."""
        job = self.get(job_id)
        if job is None:
            return False
        if queue in topology.VIDEO_QUEUES:
            if job["status"] != Status.FAILED or job.get("video_deleted_at"):
                return False
            job = self._change(
                {"_id": job["_id"], "status": Status.FAILED.value},
                {"status": Status.QUEUED.value, "error": None, "progress": 0,
                 "attempts": 0, "dispatched_at": now(), "published_at": None,
                 "result_published_at": None, "notified_at": None, "notification": None})
            if job is None:
                return False
            self.publish_video(job, publisher)
            return True
        if job["status"] not in (Status.DONE, Status.FAILED) or job.get("notified_at"):
            return False
        self._publish_result(job, job.get("mp3_fid"), job.get("error"), publisher)
        return True

    # -- after a restore (python -m ops restore) ----------------------------------------------
    def fail_restored(self, job: dict, reason: str) -> bool:
        """A restored job whose video is missing: failed for ``reason``, nothing published."""
        if not self._set(job["_id"], {"status": Status.FAILED.value, "error": reason}):
            return False
        self.drop_video(job, even_if_kept=True)
        return True

    def drop_cover_restored(self, job: dict) -> bool:
        """A restored done job whose cover file is missing or incomplete forgets it (and what
        is left of it goes); its MP3 keeps the picture embedded, and ``python -m ops migrate``
        takes it out into a cover file again. False when the job changed since it was read."""
        if not self._set(job["_id"], {"cover_fid": None},
                         where={"status": Status.DONE.value,
                                "cover_fid": object_id_equals(job["cover_fid"])}):
            return False
        self._store.delete_file(MP3S, job["cover_fid"])
        return True

    def requeue_restored(self, job: dict) -> bool:
        """A restored queued or converting job waits for the next sweep to dispatch it again
        (its message, if one was sent, went with the broker it was sent to)."""
        return self._set(job["_id"], {"status": Status.QUEUED.value, "progress": 0,
                                      "claim": None, "dispatched_at": None,
                                      "published_at": None})

    # -- the one write ------------------------------------------------------------------------
    def _set(self, job_id, fields: dict, where: dict | None = None) -> bool:
        """Set ``fields`` (and ``updated_at``) on the job if it matches ``where``; through
        ``_change`` when they change what it counts."""
        query = {"_id": object_id(job_id), **(where or {})}
        if not COUNTED_FIELDS.isdisjoint(fields):
            return self._change(query, fields) is not None
        result = self._jobs.update_one(query, {"$set": {**fields, "updated_at": now()}})
        return result.matched_count == 1

    def _change(self, query: dict, fields: dict, touch: bool = True) -> dict | None:
        """Set ``fields`` (and ``updated_at``, if ``touch``) on the job matching ``query``, and
        count the change in its owner's usage; the job as it is now, or None if none matched."""
        fields = {**fields, "updated_at": now()} if touch else dict(fields)
        before = self._jobs.find_one_and_update(query, {"$set": fields},
                                                return_document=pymongo.ReturnDocument.BEFORE)
        if before is None:
            return None
        after = {**before, **fields}
        self._count(before, after)
        return after

    def _count(self, before: dict | None, after: dict | None) -> None:
        """Add what a job counts now (``after``; None: deleted) less what it counted
        (``before``; None: just created) to its owner's usage (both owners', when it changed
        hands). A failure is logged, not raised: the job's write is done, and the sweep's
        reconciliation corrects the usage it left unrecorded."""
        deltas: dict[str, dict[str, int]] = {}
        for job, sign in ((before, -1), (after, 1)):
            if job is not None:
                delta = deltas.setdefault(job["owner"], {})
                for key, amount in usage_of(job).items():
                    delta[key] = delta.get(key, 0) + sign * amount
        job_id = str((after or before)["_id"])
        for owner, delta in deltas.items():
            delta = {key: amount for key, amount in delta.items() if amount}
            created, deleted = before is None, after is None
            if not (delta or created or deleted):
                continue
            try:
                usage.add(self._store.db, owner, delta, recorded=job_id if created else None,
                          forgotten=job_id if deleted else None)
            except Exception:  # noqa: BLE001 - reconciled by the sweep
                log.warning("could not count a job's change in its owner's usage",
                            exc_info=True, extra={"job_id": job_id})

