"""``python -m ops migrate``: bring what earlier releases left in MongoDB to today's layout.

GridFS files: earlier releases kept them in databases of their own, `videos` and `mp3s`, each
in the default bucket `fs`; today they are the buckets `videos` and `mp3s` of MONGODB_DB
(common.store). Each file is copied chunk by chunk under the same id (jobs' ``video_fid`` and
``mp3_fid`` keep naming it), its copy is read back and compared with the source (length, chunk
count, SHA-256), and only then is the source deleted. Every step is recorded in the
`migrations` collection ({"_id": "gridfs:<database>:<file id>", "state"}), so a run stopped
anywhere is finished by the next one, and a finished migration leaves nothing to do.

Jobs: timestamps stored as dates (before epoch seconds) become epoch seconds; waiting jobs of a
release without fair dispatch get the ``dispatched_at`` their message was sent at; finished
jobs of a release without MP3 retention get an ``expires_at`` a retention from now. Owners that
are addresses are left to the sweep (ops.sweep.adopt_address_owners). GridFS metadata kept the
same shape (owner, job_id, content_type, video_fid) in every release: it is copied as it is.

Covers: a done job of a release before cover files (``cover`` set, no ``cover_fid``) gets one
(common.covers), taken out of the ID3 tag at its MP3's start (ops.embedded_cover); its job then
records it, only if still done with that MP3. A cover file that a stopped run stored but did not
record is deleted before the job is taken again; a job that has its cover file is left alone.
Until then GET /jobs/<id>/cover answers that job 404 "this MP3 has no cover picture".

Run it with the services stopped (like `flask --app auth init-db`), one run at a time.
"""

import datetime as dt
import hashlib
import logging

import pymongo.errors

from common import covers
from common.jobs import ACTIVE, Status
from common.mongo_compat import object_id_equals
from common.store import MP3S, VIDEOS, Store, now
from ops import embedded_cover

log = logging.getLogger(__name__)

LEGACY = {"videos": VIDEOS, "mp3s": MP3S}  # database of an earlier release -> bucket today
LEGACY_BUCKET = "fs"
# How a server lists a legacy bucket's collections (nx-27017 names them after its tables).
LEGACY_COLLECTIONS = {"fs.files", "fs.chunks", "fs_files", "fs_chunks"}
PROGRESS = "migrations"
COPYING, VERIFIED, DONE = "copying", "verified", "done"
BATCH = 4  # chunks read (and inserted) at once: what a copy holds in memory


class Inconsistent(Exception):
    """A GridFS file whose chunks do not add up to its document."""


def checkpoint(event: str) -> None:
    """Called after each step that changed the database (a test stops the process here)."""


def migrate(store: Store, retention_seconds: float) -> dict:
    """Move every legacy file, upgrade the jobs, give their covers files of their own, drop
    legacy databases left empty; the counts."""
    counts = {"files_copied": 0, "files_verified": 0, "already_copied": 0,
              "sources_deleted": 0, "bytes_copied": 0, "incomplete_sources": 0,
              "conflicts": 0}
    present = [name for name in LEGACY if name in store.client.list_database_names()]
    for database in present:
        source = store.client[database]
        for fid in sorted((doc["_id"] for doc in source[f"{LEGACY_BUCKET}.files"].find(
                {}, {"_id": 1})), key=str):
            _move(store, source, LEGACY[database], fid, counts)
    counts.update(upgrade_jobs(store, retention_seconds))
    counts.update(extract_covers(store))
    counts["legacy_databases"] = {
        database: _dispose(store, database) if database in present else "absent"
        for database in LEGACY}
    log.info("migration finished", extra=counts)
    return counts


# -- GridFS files -----------------------------------------------------------------------------
def _move(store: Store, source, bucket: str, fid, counts: dict) -> None:
    """Copy one legacy file into ``bucket``, verify the copy, then delete the source."""
    key = f"gridfs:{source.name}:{fid}"
    progress = store.db[PROGRESS]
    state = (progress.find_one({"_id": key}) or {}).get("state")
    src_files, src_chunks = source[f"{LEGACY_BUCKET}.files"], source[f"{LEGACY_BUCKET}.chunks"]
    doc = src_files.find_one({"_id": fid})
    if doc is None:  # deleted since it was listed
        return
    where = {"database": source.name, "bucket": bucket, "file_id": str(fid)}
    # VERIFIED or DONE: copied and checked (the copy may since have been deleted with its job)
    if state not in (VERIFIED, DONE):
        copy = store.files(bucket).find_one({"_id": fid})
        if copy is not None:  # written by a run that stopped before recording its check
            try:
                same = _summary(src_chunks, doc) == _summary(store.chunks(bucket), copy)
            except Inconsistent:
                same = False
            if same and _same_document(doc, copy):
                counts["already_copied"] += 1
            elif state is None:  # not ours: leave both as they are
                counts["conflicts"] += 1
                log.error("a different file with this id is already in the bucket; the "
                          "source is kept", extra=where)
                return
            else:
                copy = None
        if copy is None:
            store.delete_file(bucket, fid)  # what a stopped run left of its copy
            _record(progress, key, COPYING)
            try:
                source_summary = _copy(src_chunks, doc, store.chunks(bucket))
            except Inconsistent as exc:
                store.delete_file(bucket, fid)
                progress.delete_one({"_id": key})
                counts["incomplete_sources"] += 1
                log.warning("legacy file not moved: it is incomplete (an upload that never "
                            "finished?); the source is kept",
                            extra={**where, "error": str(exc)})
                return
            store.files(bucket).insert_one(dict(doc))
            checkpoint("copy written")
            copied = _summary(store.chunks(bucket), store.files(bucket).find_one({"_id": fid}))
            if copied != source_summary:
                raise Inconsistent(f"the copy of {key} differs from its source")
            counts["files_copied"] += 1
            counts["bytes_copied"] += copied["length"]
        _record(progress, key, VERIFIED)
        counts["files_verified"] += 1
        checkpoint("copy verified")
    src_chunks.delete_many({"files_id": fid})
    checkpoint("source chunks deleted")
    _delete_file_doc(src_files, fid)
    _record(progress, key, DONE)
    counts["sources_deleted"] += 1
    log.info("legacy file moved", extra={**where, "length": doc.get("length")})
    checkpoint("source deleted")


def _record(progress, key: str, state: str) -> None:
    progress.update_one({"_id": key}, {"$set": {"state": state, "updated_at": now()}},
                        upsert=True)


def _chunks(chunks, doc: dict):
    """The file's chunks in order, BATCH per query; Inconsistent when they do not add up
    to its length (a chunk missing, short, or one too many)."""
    fid, length, size = doc["_id"], int(doc.get("length") or 0), int(doc.get("chunkSize") or 0)
    if size <= 0 and length > 0:
        raise Inconsistent(f"{fid} has {length} bytes in chunks of {size}")
    expected = -(-length // size) if length > 0 else 0
    for first in range(0, expected, BATCH):
        batch = list(chunks.find({"files_id": fid,
                                  "n": {"$gte": first, "$lt": first + BATCH}}).sort("n", 1))
        for n, chunk in enumerate(batch, first):
            data = bytes(chunk["data"])
            want = size if n < expected - 1 else length - size * (expected - 1)
            if chunk["n"] != n or len(data) != want:
                raise Inconsistent(f"chunk {n} of {fid} is missing or has {len(data)} bytes, "
                                   f"not {want}")
            yield n, data
        if len(batch) != min(BATCH, expected - first):
            raise Inconsistent(f"{fid} has {first + len(batch)} of its {expected} chunks")
    if chunks.find_one({"files_id": fid, "n": {"$gte": expected}}) is not None:
        raise Inconsistent(f"{fid} has more than its {expected} chunks")


def _summary(chunks, doc: dict | None, each=None) -> dict:
    """Length, chunk count and SHA-256 of a stored file, read chunk by chunk (each chunk is
    also given to ``each``, if any)."""
    if doc is None:
        raise Inconsistent("no file document")
    digest, count, length = hashlib.sha256(), 0, 0
    for n, data in _chunks(chunks, doc):
        digest.update(data)
        count += 1
        length += len(data)
        if each is not None:
            each(n, data)
    return {"length": length, "chunks": count, "sha256": digest.hexdigest()}


def _copy(src_chunks, doc: dict, dst_chunks) -> dict:
    """Insert the file's chunks into ``dst_chunks``, a batch at a time; the summary of what
    was read from the source."""
    batch = []

    def add(n: int, data: bytes) -> None:
        batch.append({"files_id": doc["_id"], "n": n, "data": data})
        if len(batch) == BATCH:
            dst_chunks.insert_many(batch)
            batch.clear()
            checkpoint("chunks copied")

    summary = _summary(src_chunks, doc, add)
    if batch:
        dst_chunks.insert_many(batch)
        checkpoint("chunks copied")
    return summary


def _same_document(doc: dict, copy: dict) -> bool:
    return all(doc.get(field) == copy.get(field)
               for field in ("length", "chunkSize", "filename", "metadata"))


def _delete_file_doc(files, fid) -> None:
    try:
        files.delete_one({"_id": fid})
    except pymongo.errors.OperationFailure:
        # nx-27017 refuses to delete a file document that is not there (MongoDB does not)
        if files.find_one({"_id": fid}) is not None:
            raise


def _dispose(store: Store, database: str) -> str:
    """Drop a legacy database nothing is left in; otherwise say what is left."""
    db = store.client[database]
    names = set(db.list_collection_names())
    files = len(list(db[f"{LEGACY_BUCKET}.files"].find({}, {"_id": 1})))
    chunks = db[f"{LEGACY_BUCKET}.chunks"].find_one({}, {"_id": 1}) is not None
    others = sorted(names - LEGACY_COLLECTIONS)
    if database == store.db.name:
        return "kept: it is MONGODB_DB"
    if files or chunks or others:
        left = [f"{files} file(s) not moved"] if files else []
        left += ["chunks with no file document"] if chunks else []
        left += [f"other collections: {', '.join(others)}"] if others else []
        log.warning("legacy database kept: it is not empty",
                    extra={"database": database, "left": left})
        return "kept: " + "; ".join(left)
    store.client.drop_database(database)
    log.info("legacy database dropped: it was empty", extra={"database": database})
    return "dropped"


# -- jobs -------------------------------------------------------------------------------------
def upgrade_jobs(store: Store, retention_seconds: float) -> dict:
    """Rewrite what job documents of earlier releases hold in a shape this one cannot read."""
    counts = {"jobs_upgraded": 0, "timestamps_converted": 0, "dispatch_recorded": 0,
              "expiry_set": 0}
    expires = round(now() + retention_seconds, 3)
    for job in list(store.jobs.find({})):
        for _attempt in range(5):
            fields = _upgraded_fields(job, expires)
            if not fields:
                break
            # only as read: a job that changed meanwhile is read again
            was = {key: job[key] if key in job else {"$exists": False} for key in fields}
            if store.jobs.update_one({"_id": job["_id"], **was}, {"$set": fields}).matched_count:
                counts["jobs_upgraded"] += 1
                counts["timestamps_converted"] += sum(isinstance(job.get(key), dt.datetime)
                                                      for key in fields)
                counts["dispatch_recorded"] += "dispatched_at" in fields
                counts["expiry_set"] += "expires_at" in fields
                break
            job = store.jobs.find_one({"_id": job["_id"]})
            if job is None:
                break
    return counts


def _upgraded_fields(job: dict, expires: float) -> dict:
    """What to set on one job: dates as epoch seconds, and the fields later releases added."""
    fields = {key: round(value.timestamp(), 3) for key, value in job.items()
              if key.endswith("_at") and isinstance(value, dt.datetime)}
    seen = {**job, **fields}
    if job.get("status") in ACTIVE and "dispatched_at" not in job:
        # its `video` message went out when it was uploaded (or the sweep re-sends it)
        fields["dispatched_at"] = seen.get("published_at") or seen.get("created_at") or now()
    if job.get("status") == Status.DONE and "expires_at" not in job:
        fields["expires_at"] = expires
    return fields


# -- covers -----------------------------------------------------------------------------------
def extract_covers(store: Store) -> dict:
    """Store the cover embedded in the MP3 of each done job that has one but no cover file,
    and record it on the job."""
    counts = {"covers_extracted": 0, "covers_not_found": 0}
    for job in list(store.jobs.find({"status": Status.DONE.value},
                                    {"owner": 1, "filename": 1, "mp3_fid": 1, "cover": 1,
                                     "cover_fid": 1})):
        if not job.get("cover") or job.get("cover_fid"):
            continue
        where = {"job_id": str(job["_id"]), "mp3_fid": str(job.get("mp3_fid"))}
        for doc in list(store.files(MP3S).find({"metadata.job_id": str(job["_id"])},
                                               {"metadata": 1})):
            if covers.is_cover(doc):  # stored by a run that stopped before recording it
                store.delete_file(MP3S, doc["_id"])
        jpeg = embedded_cover.read(store, job.get("mp3_fid"))
        if jpeg is None:
            counts["covers_not_found"] += 1
            log.warning("no cover picture in the MP3 of a job that records one; its cover "
                        "stays unavailable", extra=where)
            continue
        fid = covers.save(store, job, jpeg)
        checkpoint("cover stored")
        recorded = store.jobs.update_one(
            {"_id": job["_id"], "status": Status.DONE.value,
             "mp3_fid": object_id_equals(job["mp3_fid"]), "cover_fid": None},
            {"$set": {"cover_fid": fid}})
        if not recorded.matched_count:  # deleted, expired or given a cover meanwhile
            store.delete_file(MP3S, fid)
            continue
        counts["covers_extracted"] += 1
        log.info("cover taken out of the MP3", extra={**where, "cover_fid": str(fid),
                                                       "length": len(jpeg)})
        checkpoint("cover recorded")
    return counts
