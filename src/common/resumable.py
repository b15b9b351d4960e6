"""Resumable uploads (tus 1.0, ``gateway.resumable``) while they are received, and their end.

An unfinished upload is one document of ``resumable_uploads``, its id the job id it becomes:

    {"_id", "owner", "fid" (its GridFS file id in ``videos``), "filename", "content_type",
     "options" (checked, as the job keeps them), "metadata" (the Upload-Metadata as sent),
     "length", "offset", "tail" (the bytes past the last full chunk), "checked" (its first
     bytes passed the content check), "created_at", "expires_at", "lease", "lease_until",
     "completed_at"}

Its bytes are ``videos.chunks`` documents n = 0, 1, 2... of CHUNK_SIZE each, written as they
arrive; the incomplete last chunk is ``tail`` until it fills. Its ``videos.files`` document is
written last, when every byte has come: it is then an ordinary GridFS file. Its owner's quotas
count it as a job waiting of ``length`` bytes until ``expires_at`` (``common.quotas``: reserved
``until`` then). The sweep (``ops.upkeep``) removes the expired ones with their chunks, and
leaves the chunks of unexpired ones alone.
"""

from common.indexes import RESUMABLE
from common.quotas import Quotas
from common.store import VIDEOS, Store, now

__all__ = ["RESUMABLE", "collection", "discard", "remove_expired", "remove_owner",
           "unfinished_file_ids"]


def collection(store: Store):
    """The ``resumable_uploads`` collection."""
    return store.db[RESUMABLE]


def discard(store: Store, doc: dict) -> None:
    """Remove an unfinished upload: its chunks, its record, its place in the owner's quota.
    A finished one only loses its record (its file belongs to its job)."""
    if doc.get("completed_at") is None:
        store.delete_file(VIDEOS, doc["fid"])
        Quotas(store).release(doc["_id"], doc["owner"])
    collection(store).delete_one({"_id": doc["_id"]})


def unfinished_file_ids(store: Store) -> set:
    """The GridFS ids of the unfinished uploads not yet expired: their chunks have no
    ``videos.files`` document yet, and are no orphans."""
    return {doc["fid"] for doc in collection(store).find(
        {"completed_at": None, "expires_at": {"$gte": now()}}, {"fid": 1})}


def remove_expired(store: Store) -> int:
    """Remove the uploads past ``expires_at`` (the unfinished ones with their chunks, the
    finished ones' records); returns how many unfinished ones went."""
    removed = 0
    for doc in list(collection(store).find({"expires_at": {"$lt": now()}})):
        discard(store, doc)
        removed += doc.get("completed_at") is None
    return removed


def remove_owner(store: Store, owner: str) -> int:
    """Remove every upload of ``owner`` (a deleted account), with what came of them; returns
    how many unfinished ones went."""
    removed = 0
    for doc in list(collection(store).find({"owner": owner})):
        discard(store, doc)
        removed += doc.get("completed_at") is None
    return removed
