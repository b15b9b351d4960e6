"""The MongoDB indexes of every collection the services and the operator commands query, and
their creation (``ensure``), run when a service starts and by ``python -m ops migrate``.

Each index lists the queries it serves. A query not served by one reads by ``_id`` (MongoDB's
own index), or reads the whole collection on purpose (``upgrade_jobs``, ``remove_orphans``'s
listing of file documents, ``reconcile_usage``'s of usage documents). `leases`, `migrations`
and `usage` are only read by ``_id``; `rate_limits` has its TTL index from
gateway.ratelimit_storage.

Creating an index that exists is a no-op, so ``ensure`` runs at every start. An index that
cannot be created (no ``createIndex`` privilege, a build refused) is logged and skipped: the
queries still answer, only slower. On nx-27017 (`make run` and the tests): an index is an
SQLite expression index (key directions do not matter), ``_id`` cannot be part of a compound
key (such an index is made without it there: ``_id`` then only breaks ties among the jobs of
one owner created in the same millisecond), and GridFS buckets are tables of nx-27017's
own, indexed by it (``createIndexes`` on them is accepted and does nothing).
"""

import logging
from dataclasses import dataclass

import pymongo
import pymongo.errors

from common.store import BUCKETS

log = logging.getLogger(__name__)

JOBS, UPLOADS, RESUMABLE = "jobs", "uploads", "resumable_uploads"
WEBHOOKS, WEBHOOK_DELIVERIES = "webhooks", "webhook_deliveries"  # (common.webhooks)
WEBHOOK_SENT = "webhook_sent"
# seconds a service's start waits for each index; on an upgrade ``python -m ops migrate``, run
# before the services start, builds them and waits up to MIGRATE_TIMEOUT for each
SERVICE_TIMEOUT = 15.0
MIGRATE_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Index:
    """One index: its collection, its key (field, direction) pairs, and what it serves."""

    collection: str
    keys: tuple[tuple[str, int], ...]
    serves: tuple[str, ...]
    unique: bool = False

    @property
    def name(self) -> str:
        """MongoDB's default name for the key (``owner_1_created_at_-1``)."""
        return "_".join(f"{field}_{direction}" for field, direction in self.keys)

    def model(self, without_id: bool = False) -> pymongo.IndexModel:
        """The index as pymongo creates it (``without_id``: ``_id`` left out of a compound
        key, for nx-27017)."""
        keys = [key for key in self.keys
                if not (without_id and len(self.keys) > 1 and key[0] == "_id")]
        options = {"unique": True} if self.unique else {}
        name = "_".join(f"{field}_{direction}" for field, direction in keys)
        return pymongo.IndexModel(keys, name=name, **options)


def _gridfs(bucket: str) -> tuple[Index, ...]:
    return (
        # GridFS's own (drivers make it; common.gridio writes the chunks with plain inserts,
        # so here it is made for them)
        Index(f"{bucket}.chunks", (("files_id", 1), ("n", 1)), (
            "gridio.GridReader._chunk, mongo_compat.count_chunks, ops.migrate._chunks: "
            "chunks of a file by files_id, n range, sorted by n",
            "Store.delete_file: delete_many by files_id",
            "ops.upkeep.remove_orphans, ops.mongodump.documents: distinct files_id"),
            unique=True),
        Index(f"{bucket}.files", (("metadata.job_id", 1),), (
            "Jobs._remove_files: a deleted job's files still being written",
            "ops.migrate.extract_covers: a job's cover files")),
        Index(f"{bucket}.files", (("metadata.owner", 1),), (
            "Jobs.hand_over: update_many by metadata.owner",)),
    )


INDEXES: tuple[Index, ...] = (
    Index(JOBS, (("owner", 1), ("created_at", -1), ("_id", -1)), (
        "Jobs.of_owner (GET /jobs): an owner's jobs, newest first (created_at, then _id)",
        "Jobs.delete_owner: owner, created_at before",
        "Jobs.hand_over: an owner's jobs, moved one by one",
        "Jobs.owners: distinct owner")),
    Index(JOBS, (("owner", 1), ("status", 1), ("dispatched_at", 1), ("created_at", 1)), (
        "Jobs.dispatch: the owner's oldest queued job not dispatched (sorted by created_at)",
        "Jobs._in_flight: count of the owner's jobs of one status dispatched",
        "Quotas._of_jobs: $match owner and one status (a usage document made or reconciled)")),
    Index(JOBS, (("status", 1), ("created_at", 1)), (
        "Jobs.queued_summary (the queued-jobs gauges): count of queued, the oldest queued",
        "ops.upkeep.recover_unpublished: distinct owner of queued jobs not dispatched",
        "ops.upkeep.reconcile_restored, ops.migrate.extract_covers: jobs of a status")),
    Index(JOBS, (("status", 1), ("updated_at", 1)), (
        "ops.upkeep.recover_unpublished: queued jobs not published, unchanged for a while",
        "ops.upkeep.recover_stuck: converting jobs unchanged for a while",
        "ops.upkeep.expire: failed jobs whose kept video is past retention")),
    Index(JOBS, (("status", 1), ("expires_at", 1)), (
        "ops.upkeep.expire: done jobs past expires_at",)),
    Index(JOBS, (("mp3_fid", 1),), (
        "Jobs.by_mp3 (GET /download/<fid>): the job of an MP3",)),
    Index(UPLOADS, (("updated_at", 1),), (
        "Quotas.remove_stale_uploads: owners' uploads not heard of for a while",)),
    Index(RESUMABLE, (("expires_at", 1),), (
        "resumable.remove_expired (the sweep): resumable uploads past expires_at",
        "resumable.unfinished_file_ids (the sweep's orphans): unfinished, unexpired uploads")),
    Index(RESUMABLE, (("owner", 1),), (
        "resumable.remove_owner (DELETE /account, the sweep): a deleted account's uploads",)),
    Index(WEBHOOKS, (("owner", 1),), (
        "Webhooks.create (the owner's count), of_owner, subscribed (each job event), "
        "delete_owner: an owner's endpoints",)),
    Index(WEBHOOK_DELIVERIES, (("endpoint_id", 1),), (
        "Webhooks.record (each attempt), recent (GET /webhooks/<id>/deliveries), delete: an "
        "endpoint's attempts",)),
    Index(WEBHOOK_SENT, (("at", 1),), (
        "Webhooks.forget_sent (the sweep): deliveries that succeeded long ago",)),
    *(index for bucket in BUCKETS for index in _gridfs(bucket)),
)

COLLECTIONS = tuple(dict.fromkeys(index.collection for index in INDEXES))
# What a service that stores and reads files and jobs but never counts uploads needs.
JOBS_AND_FILES = tuple(name for name in COLLECTIONS
                       if name not in (UPLOADS, RESUMABLE, WEBHOOKS, WEBHOOK_DELIVERIES,
                                       WEBHOOK_SENT))
# The gateway's: all but what only notification and the sweep query.
GATEWAY = tuple(name for name in COLLECTIONS if name != WEBHOOK_SENT)


def ensure(db, collections=COLLECTIONS, timeout: float = SERVICE_TIMEOUT) -> dict:
    """Create the indexes of ``collections`` in ``db`` that are not there yet, each within
    ``timeout`` seconds; one that cannot be is logged and skipped, and a MongoDB that does not
    answer (or an index still building past ``timeout``) ends the round: the next start tries
    again. {"present": [...], "failed": [...]}, each as ``collection.name``."""
    done: dict = {"present": [], "failed": []}
    try:
        with pymongo.timeout(timeout):
            without_id = _is_nx_27017(db)
    except pymongo.errors.PyMongoError as exc:
        log.warning("could not create the indexes: MongoDB did not answer",
                    extra={"error": str(exc)[:300]})
        return {"present": [], "failed": [f"{index.collection}.{index.name}"
                                          for index in INDEXES
                                          if index.collection in collections]}
    for index in INDEXES:
        if index.collection not in collections:
            continue
        label = f"{index.collection}.{index.name}"
        try:
            with pymongo.timeout(timeout):
                db[index.collection].create_indexes([index.model(without_id)])
        except pymongo.errors.PyMongoError as exc:
            done["failed"].append(label)
            log.warning("could not create an index; the queries it serves read the whole "
                        "collection until it is", extra={
                            "collection": index.collection, "index": index.name,
                            "error": str(exc)[:300]})
            if isinstance(exc, (pymongo.errors.ConnectionFailure,
                                pymongo.errors.ExecutionTimeout)):
                break
        else:
            done["present"].append(label)
    log.info("indexes checked", extra={"present": len(done["present"]),
                                       "failed": len(done["failed"])})
    return done


def _is_nx_27017(db) -> bool:
    """Whether the server is nx-27017 (its buildInfo names its process; MongoDB's does not).
    It reads ``_id`` in a compound key as a document field that is never there: it accepts
    such an index on an empty collection, then refuses every insert ("JSON path error")."""
    return db.client.admin.command("buildInfo").get("process") == "nx_27017"
