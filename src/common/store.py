"""MongoDB access: the GridFS buckets and the collections, under one database (MONGODB_DB).

Only ``common.jobs`` writes the `jobs` collection; the services read and write files here.
"""

import time

import pymongo
import pymongo.errors
from bson import ObjectId
from bson.errors import InvalidId

from common import mongo_compat
from common.gridio import FileMissing
from common.settings import MongoSettings

VIDEOS = "videos"  # GridFS bucket of uploaded videos (collections videos.files, videos.chunks)
MP3S = "mp3s"  # GridFS bucket of finished MP3s
BUCKETS = (VIDEOS, MP3S)
CHUNK_SIZE = 1024 * 1024  # bytes per GridFS chunk
# Errors that mean "MongoDB is unreachable or slow right now"; callers answer 503 or retry.
UNAVAILABLE = (pymongo.errors.ConnectionFailure, pymongo.errors.ServerSelectionTimeoutError)


def now() -> float:
    """The current time as epoch seconds, as timestamps are stored (numbers, not dates: see
    common.mongo_compat)."""
    return round(time.time(), 3)


def object_id(value) -> ObjectId | None:
    """Parse a 24-hex id; None when malformed."""
    if isinstance(value, ObjectId):
        return value
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        return None


class Store:
    """One MongoDB client, the service's database and its GridFS buckets."""

    def __init__(self, settings: MongoSettings, timeout_ms: int = 3000):
        self.client = pymongo.MongoClient(
            settings.uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms, 30000), tz_aware=True)
        self.db = self.client[settings.db]
        self.jobs = self.db["jobs"]

    def ping(self) -> None:
        """Raise when MongoDB is unreachable."""
        self.client.admin.command("ping")

    def close(self) -> None:
        """Close the client."""
        self.client.close()

    def ensure_indexes(self, collections=None, timeout: float | None = None) -> dict:
        """Create the indexes the queries on ``collections`` (default: all) need, as listed in
        common.indexes; what cannot be created is logged, never raised."""
        from common import indexes  # which names this module's buckets

        return indexes.ensure(self.db, collections or indexes.COLLECTIONS,
                              timeout or indexes.SERVICE_TIMEOUT)

    def files(self, bucket: str):
        """The ``.files`` collection of a bucket."""
        return self.db[f"{bucket}.files"]

    def chunks(self, bucket: str):
        """The ``.chunks`` collection of a bucket."""
        return self.db[f"{bucket}.chunks"]

    def open_upload(self, bucket: str, filename: str, metadata: dict) -> mongo_compat.GridWriter:
        """A new GridFS file in ``bucket``, written chunk by chunk."""
        return mongo_compat.GridWriter(self.db, bucket, filename, metadata, CHUNK_SIZE)

    def open_download(self, bucket: str, fid) -> mongo_compat.GridReader:
        """A stored GridFS file of ``bucket``; raises FileMissing."""
        doc = self.find_file(bucket, fid)
        if doc is None:
            raise FileMissing(f"no file {fid} in {bucket}")
        return mongo_compat.GridReader(self.db, bucket, doc)

    def find_file(self, bucket: str, fid) -> dict | None:
        """The GridFS file document with this id in ``bucket``, or None."""
        oid = object_id(fid)
        if oid is None:
            return None
        return self.files(bucket).find_one({"_id": oid})

    def delete_file(self, bucket: str, fid) -> None:
        """Delete a GridFS file of ``bucket``; one already gone (or no id at all) is fine."""
        oid = object_id(fid)
        if oid is None:
            return
        mongo_compat.delete_file_document(self.files(bucket), oid)
        self.chunks(bucket).delete_many({"files_id": oid})
