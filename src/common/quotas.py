"""What each owner uses against their quotas, and the uploads being received counted in it.

An upload is counted before its body is read (``Quotas.admit``: a place among the conversions
waiting, and the size its Content-Length announced), brought up to date as its bytes arrive
(``Admission.check``: growing past that is checked against the storage quota), and no longer
counted once its job is recorded, which counts from then on, or once it is refused
(``Admission.release``). Uploads sent together take what is free one after the other, and none
gets past the quotas (``Quotas._claim``).

An owner's usage is their usage document (``common.usage``: bytes, active jobs, jobs of each
status, kept up to date by every transition of their jobs, ``common.jobs``), read in one
``find_one``, plus their uploads in progress: one document per owner in ``uploads``,
{"_id": owner, "version", "uploads": {job id: {"size", "updated_at"[, "until"]}}, "updated_at"}.
An upload whose job is recorded is in the usage document's ``recorded`` (written with the job's
count, at once): it then counts as the job, never as both and never as neither.

Where the usage document is missing (an owner of an earlier release, after a restore) or
``partial`` (made by a transition before any count), the jobs are aggregated as before (one
aggregation per status, ``_of_jobs``) and the document created from them, or corrected if no
transition changed it meanwhile. The sweep reconciles documents with the jobs (``reconcile``,
driven by ``ops.upkeep.reconcile_usage``): a process that died between a job's write and its
count leaves its owner's document off until then.

A resumable upload (``gateway.resumable``) is received over many requests, with pauses as long as
its client likes: it is reserved ``until`` it expires, counted the whole time as a job waiting of
its announced length, and never dropped as stale before then.
"""

import logging
import random
import time
import uuid
from dataclasses import dataclass, field

from pymongo.errors import DuplicateKeyError

from common import usage as ledger
from common.jobs import ACTIVE, Status
from common.store import Store, now, object_id

log = logging.getLogger(__name__)
UPLOADS = "uploads"
UPLOAD_STALE_SECONDS = 600.0  # an upload not heard of for this long is no longer counted
CLAIM_ATTEMPTS = 100  # times an upload may find its owner's uploads changed under it (Contended)
# the statuses whose jobs hold what the quotas limit (videos waiting, MP3s kept)
COUNTED = (*ACTIVE, Status.DONE)
READ_ATTEMPTS = 3  # times the jobs are read again when uploads became jobs as they were read
# A reconciliation that finds a usage document off computes it again after this many seconds
# and corrects it only if both agree and the document did not change: a transition whose job
# was written but whose count had not landed yet (the two are a moment apart) lands meanwhile.
RECONCILE_SETTLE_SECONDS = 0.5
# While a body streams in, what it is counted for is brought up to date every so many bytes or
# seconds (growing past it is checked against the storage quota), and once more at its end.
CHECK_BYTES = 4 * 1024 * 1024
CHECK_SECONDS = 5.0


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


class Quotas:
    """The owners' usage, and their uploads in progress counted in it."""

    def __init__(self, store: Store):
        self._jobs = store.jobs
        self._uploads = store.db[UPLOADS]
        self._db = store.db
        self._ledger = store.db[ledger.USAGE]

    def usage(self, owner: str) -> Usage:
        """What ``owner`` stores now, and how many of their jobs are waiting or converting;
        their uploads being received count as jobs waiting, with what they were counted for
        (``reserve``, ``resize``)."""
        return self._usage(owner, self._uploads.find_one({"_id": owner}))

    def admit(self, job_id, owner: str, size: int, max_active: int | None = None,
              max_bytes: int | None = None) -> "Admission":
        """``reserve`` an upload about to be received; its Admission checks it as it arrives
        and, as a context manager, releases it at its end."""
        usage = self.reserve(job_id, owner, size, max_active, max_bytes)
        return Admission(self, job_id, owner, size, max_bytes, usage)

    def reserve(self, job_id, owner: str, size: int, max_active: int | None = None,
                max_bytes: int | None = None, until: float | None = None) -> Usage:
        """Count an upload about to be received, as a job waiting of ``size`` bytes, against
        its owner's quotas (``usage``) until it is released (``release``: its job is recorded,
        or it was refused) — if it fits: with it, at most ``max_active`` jobs waiting or
        converting and ``max_bytes`` stored, everything of the owner's counted, their other
        uploads in progress too. Checked and recorded at once (see ``_claim``): uploads sent
        together take what is free one after the other, so as many fit as there is room for,
        and no more. Returns the owner's usage without this upload; raises OverLimit when it
        does not fit (nothing is recorded), Contended when it could not be counted. ``until``
        (epoch seconds): the reservation holds until then without being heard of (a resumable
        upload), instead of UPLOAD_STALE_SECONDS after its last news."""
        return self._claim(owner, str(object_id(job_id)), size, max_active, max_bytes, until)

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
        """Stop counting the upload: its job is recorded (and counts from now on), or it was
        refused or broke off. Its job, if recorded, leaves the usage document's ``recorded``
        after it leaves the uploads (a reader that saw it in both counts it once; in the
        uploads alone, at worst twice: never less)."""
        key = object_id(job_id)
        self._uploads.update_one({"_id": owner}, {"$unset": {f"uploads.{key}": ""}})
        ledger.unrecord(self._db, owner, [key])

    def remove_stale_uploads(self) -> int:
        """Forget uploads not heard of for UPLOAD_STALE_SECONDS (a gateway stopped while
        receiving them): the documents of owners with nothing written since then go, unless
        they changed meanwhile. Returns how many uploads were still in them."""
        cutoff = now() - UPLOAD_STALE_SECONDS
        removed = 0
        for doc in list(self._uploads.find({"updated_at": {"$lt": cutoff}})):
            if any((upload.get("until") or 0) > now()
                   for upload in (doc.get("uploads") or {}).values()):
                continue  # a resumable upload reserved until it expires
            query = {"_id": doc["_id"], "updated_at": {"$lt": cutoff}}
            if "version" in doc:
                query["version"] = doc["version"]
            if self._uploads.delete_one(query).deleted_count:
                # an earlier release's record of one upload has no "uploads"
                removed += len(doc.get("uploads") or {}) if "version" in doc else 1
        return removed

    def _usage(self, owner: str, uploads_doc: dict | None,
               leave_out: str | None = None) -> Usage:
        """``usage`` with the owner's uploads in progress as read in ``uploads_doc`` (read
        before the usage document), but for the upload ``leave_out``."""
        uploads = {key: size for key, size in _in_progress(uploads_doc).items()
                   if key != leave_out}
        doc = self._ledger.find_one({"_id": owner})
        if doc is None or doc.get("partial"):
            usage, recorded = self._usage_of_jobs(owner, uploads, doc)
        else:
            # an upload whose job's count is in the document counts as that job
            usage, recorded = _from_doc(doc), set(doc.get("recorded") or {})
        in_progress = [size for key, size in uploads.items() if key not in recorded]
        usage.active_jobs += len(in_progress)
        usage.bytes += sum(in_progress)
        return usage

    def _usage_of_jobs(self, owner: str, uploads: dict[str, int],
                       doc: dict | None) -> tuple[Usage, set[str]]:
        """The owner's jobs aggregated, for want of a usage document to trust (``doc``, as
        read: None or ``partial``), which is then made from them; and which of ``uploads``
        have their job recorded."""
        # An upload whose job is recorded counts as that job. Which ones are is read before
        # the jobs and again after them; when an upload became a job in between, the jobs are
        # read again: each is counted once (and at worst, after READ_ATTEMPTS, twice: never
        # less than what is in use).
        seen = self._recorded(owner, uploads)
        for _ in range(READ_ATTEMPTS):
            usage = self._of_jobs(owner)
            recorded, seen = seen, self._recorded(owner, uploads)
            if seen == recorded:
                break
        # Made at once, without the reconciliation's second look: a transition whose count
        # lands after this write, though its job was aggregated, is counted twice (more than
        # in use, never less) until the sweep checks the document, which it does first.
        self._write_counts(owner, doc, usage, checked=False)
        return usage, recorded

    def _of_jobs(self, owner: str, statuses=tuple(Status)) -> Usage:
        """What the owner's jobs of ``statuses`` use (the others are counted as none), one
        aggregation per status (mongo_compat: nx-27017 runs ``$in`` in Python). The rule is
        ``common.jobs.usage_of``'s, summed here as the database sums it."""
        usage = Usage()
        for status in statuses:
            for group in self._jobs.aggregate([
                    {"$match": {"owner": owner, "status": status.value}},
                    {"$group": {"_id": None, "jobs": {"$sum": 1}, "size": {"$sum": "$size"},
                                "mp3_size": {"$sum": "$mp3_size"}}}]):
                usage.counts[status.value] = jobs = group["jobs"]
                # a sum over no value is 0 (nx-27017: None)
                if status in ACTIVE:
                    usage.active_jobs += jobs
                    usage.bytes += int(group["size"] or 0)
                elif status == Status.DONE:
                    usage.bytes += int(group["mp3_size"] or 0)
        return usage

    # -- reconciliation (the sweep: ops.upkeep.reconcile_usage) --------------------------------
    def reconcile(self, owner: str, settle: float | None = None) -> str:
        """Compare the owner's usage document with their jobs, and correct it if it is off:
        ``agreed`` (it was right; marked checked), ``created`` (there was none),
        ``corrected``, or ``moved`` (it or the jobs changed while this looked: nothing written,
        the next sweep looks again).

        A document found off is computed again ``settle`` seconds later
        (RECONCILE_SETTLE_SECONDS): a transition caught between its job's write and its count
        lands its count meanwhile, which changes the document's ``version``. The correction is
        a compare-and-set on that version (or an insert that fails if a transition made the
        document meanwhile), so a count that lands while this computes is never overwritten;
        one that lands after the correction applies on top of it, as it should, since the
        jobs were read before its job changed (both computations agreeing). Only a
        transition stalled between its two writes for longer than ``settle`` and the second
        aggregation is counted twice, until the next reconciliation of its owner."""
        settle = RECONCILE_SETTLE_SECONDS if settle is None else settle
        doc = self._ledger.find_one({"_id": owner})
        computed = self._of_jobs(owner)
        if doc is not None and not doc.get("partial") and _from_doc(doc) == computed:
            self._ledger.update_one({"_id": owner, "version": doc.get("version")},
                                    {"$set": {"checked_at": now()}})
            ledger.unrecord(self._db, owner, _stale_records(doc))
            return "agreed"
        if settle:
            _settle(settle)
        if self._of_jobs(owner) != computed:
            return "moved"
        if not self._write_counts(owner, doc, computed):
            return "moved"
        if doc is None:
            return "created"
        log.warning("usage corrected", extra={"owner": owner, "was": _fields(_from_doc(doc)),
                                              "now": _fields(computed)})
        return "corrected"

    def _write_counts(self, owner: str, doc: dict | None, usage: "Usage",
                      checked: bool = True) -> bool:
        """Write ``usage`` as the owner's document if it is still ``doc`` as read (None: there
        was none); False if a transition changed it meanwhile; ``checked``: by a reconciliation
        (else ``checked_at`` is None: the sweep checks it first). Uploads recorded lately stay
        recorded; older ones are dropped (their uploads are released or stale by now)."""
        moment = now()
        fields = {**_fields(usage), "updated_at": moment,
                  "checked_at": moment if checked else None,
                  "version": uuid.uuid4().hex,
                  "recorded": {key: at for key, at in ((doc or {}).get("recorded") or {}).items()
                               if key not in _stale_records(doc)}}
        if doc is None:
            try:
                self._ledger.insert_one({"_id": owner, **fields})
            except DuplicateKeyError:
                return False
            return True
        return self._ledger.update_one({"_id": owner, "version": doc.get("version")},
                                       {"$set": fields, "$unset": {"partial": ""}}
                                       ).matched_count == 1

    def _recorded(self, owner: str, keys) -> set[str]:
        """Which of the owner's uploads ``keys`` have their job recorded."""
        ids = [oid for oid in map(object_id, keys) if oid is not None]
        if not ids:
            return set()
        return {str(job["_id"]) for job in self._jobs.find(
            {"_id": {"$in": ids}, "owner": owner}, {"_id": 1})}

    def _claim(self, owner: str, key: str, size: int, max_active: int | None,
               max_bytes: int | None, until: float | None = None) -> Usage:
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
            if self._write_claim(owner, doc, key, int(size), until):
                return usage
            time.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))
        raise Contended(f"{CLAIM_ATTEMPTS} attempts to count an upload lost to others")

    def _write_claim(self, owner: str, doc: dict | None, key: str, size: int,
                     until: float | None = None) -> bool:
        """Write upload ``key``'s count into the owner's document as read (``doc``; None: it
        did not exist), dropping the uploads no longer heard of; False if it changed since."""
        # A version is never reused: a document deleted and made anew cannot pass for the one
        # read.
        moment, version = now(), uuid.uuid4().hex
        entry = {"size": size, "updated_at": moment}
        if until is not None:
            entry["until"] = float(until)
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


class Admission:
    """One upload counted against its owner's quotas (``Quotas.admit``), until it is released:
    as a context manager, when its block ends however it ends."""

    def __init__(self, quotas: Quotas, job_id, owner: str, expected: int,
                 max_bytes: int | None, usage: Usage):
        self.usage = usage  # the owner's without this upload, when it was admitted
        self._quotas, self._job_id, self._owner = quotas, job_id, owner
        self._expected = expected  # the file's size as the Content-Length announced it
        self._max_bytes = max_bytes
        self._recorded = expected
        self._checked_at = time.monotonic()

    def check(self, size: int, final: bool = False) -> None:
        """Hear that ``size`` bytes of the upload came so far (``final``: all of it). Every
        CHECK_BYTES or CHECK_SECONDS, and at its end, its count is brought up to date: what it
        was admitted for is its own; growing past it is checked against the storage quota,
        with the owner's stored files and other uploads in progress (OverLimit)."""
        if not final and (size - self._recorded < CHECK_BYTES
                          and time.monotonic() - self._checked_at < CHECK_SECONDS):
            return
        recorded = size if final else max(size, self._expected)
        self._quotas.resize(self._job_id, self._owner, recorded, max_bytes=self._max_bytes)
        self._recorded = recorded
        self._checked_at = time.monotonic()

    def release(self) -> None:
        """Stop counting the upload (``Quotas.release``); one that cannot be is no longer
        counted after UPLOAD_STALE_SECONDS."""
        try:
            self._quotas.release(self._job_id, self._owner)
        except Exception:  # noqa: BLE001 - no longer counted after UPLOAD_STALE_SECONDS
            log.warning("could not stop counting an upload", exc_info=True)

    def __enter__(self) -> "Admission":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def _stale_records(doc: dict | None) -> set[str]:
    """The jobs of a usage document's ``recorded`` whose uploads were released long ago (a
    process stopped before it could drop them): released or stale by now."""
    cutoff = now() - UPLOAD_STALE_SECONDS
    return {key for key, at in ((doc or {}).get("recorded") or {}).items()
            if (at or 0) <= cutoff}


def _settle(seconds: float) -> None:
    """The reconciliation's pause before it looks again (``Quotas.reconcile``)."""
    time.sleep(seconds)


def _fields(usage: Usage) -> dict:
    """A usage document's counts (``common.usage``)."""
    return {"bytes": usage.bytes, "active_jobs": usage.active_jobs, "jobs": dict(usage.counts)}


def _from_doc(doc: dict) -> Usage:
    """The usage a document (``common.usage``) holds."""
    counts = Usage().counts
    counts.update({status: int(n or 0) for status, n in (doc.get("jobs") or {}).items()})
    return Usage(bytes=int(doc.get("bytes") or 0), active_jobs=int(doc.get("active_jobs") or 0),
                 counts=counts)


def _in_progress(uploads_doc: dict | None) -> dict[str, int]:
    """The uploads of an owner's document (``UPLOADS``) heard of lately, or reserved until a
    time still to come (resumable uploads): job id -> size."""
    moment = now()
    fresh = moment - UPLOAD_STALE_SECONDS
    return {key: int(upload.get("size") or 0)
            for key, upload in ((uploads_doc or {}).get("uploads") or {}).items()
            if (upload.get("updated_at") or 0) > fresh or (upload.get("until") or 0) > moment}
