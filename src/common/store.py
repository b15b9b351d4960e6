"""MongoDB access: GridFS files in `videos` and `mp3s`, and the `jobs` collection."""

import logging
import time

import pymongo
import pymongo.errors
from bson import ObjectId
from bson.errors import InvalidId

from common.gridio import FileMissing, GridReader, GridWriter
from common.settings import MongoSettings

log = logging.getLogger(__name__)

QUEUED, CONVERTING, DONE, FAILED = "queued", "converting", "done", "failed"
CHUNK_SIZE = 1024 * 1024  # bytes per GridFS chunk
# Errors that mean "MongoDB is unreachable or slow right now"; callers answer 503 or retry.
UNAVAILABLE = (pymongo.errors.ConnectionFailure, pymongo.errors.ServerSelectionTimeoutError)


def now() -> float:
    """The current time as epoch seconds (stored as numbers: every MongoDB server compares
    them the same way, which is not true of dates set through updates)."""
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
    """One MongoDB client and the collections every service uses."""

    def __init__(self, settings: MongoSettings, timeout_ms: int = 3000):
        self.client = pymongo.MongoClient(
            settings.uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms, 30000), tz_aware=True)
        self.jobs = self.client[settings.db]["jobs"]

    def ping(self) -> None:
        """Raise when MongoDB is unreachable."""
        self.client.admin.command("ping")

    def close(self) -> None:
        """Close the client."""
        self.client.close()

    # -- jobs ------------------------------------------------------------------------------
    def create_job(self, job_id: ObjectId, owner: str, video_fid: ObjectId, filename: str,
                   content_type: str, size: int) -> dict:
        """Record a newly uploaded video as a queued job."""
        moment = now()
        doc = {"_id": job_id, "owner": owner, "video_fid": video_fid, "filename": filename,
               "content_type": content_type, "size": size, "status": QUEUED, "progress": 0,
               "attempts": 0, "created_at": moment, "updated_at": moment}
        self.jobs.insert_one(doc)
        return doc

    def get_job(self, job_id, owner: str | None = None) -> dict | None:
        """The job with this id (and owner, when given), or None."""
        oid = object_id(job_id)
        if oid is None:
            return None
        query = {"_id": oid}
        if owner is not None:
            query["owner"] = owner
        return self.jobs.find_one(query)

    def list_jobs(self, owner: str, limit: int = 200) -> list[dict]:
        """The owner's jobs, newest first."""
        return list(self.jobs.find({"owner": owner}).sort("created_at", -1).limit(limit))

    def update_job(self, job_id, fields: dict, where: dict | None = None) -> bool:
        """Set ``fields`` (and ``updated_at``) on the job if it matches ``where``."""
        query = {"_id": object_id(job_id), **(where or {})}
        result = self.jobs.update_one(query, {"$set": {**fields, "updated_at": now()}})
        return result.matched_count == 1

    def claim_job(self, job_id, token: str) -> dict | None:
        """Take a queued or interrupted job for conversion; None if it is done or failed."""
        return self.jobs.find_one_and_update(
            {"_id": object_id(job_id), "status": {"$in": [QUEUED, CONVERTING]}},
            {"$set": {"status": CONVERTING, "claim": token, "progress": 0, "updated_at": now()},
             "$inc": {"attempts": 1}},
            return_document=pymongo.ReturnDocument.AFTER)

    def delete_job(self, job_id) -> None:
        """Remove a job record."""
        self.jobs.delete_one({"_id": object_id(job_id)})

    def open_upload(self, database: str, filename: str, metadata: dict) -> GridWriter:
        """A new GridFS file in ``videos`` or ``mp3s``, written chunk by chunk."""
        return GridWriter(self.client[database], filename, metadata, CHUNK_SIZE)

    def open_download(self, database: str, fid) -> GridReader:
        """A stored GridFS file in ``videos`` or ``mp3s``; raises FileMissing."""
        doc = self.find_file(database, fid)
        if doc is None:
            raise FileMissing(f"no file {fid} in {database}")
        return GridReader(self.client[database], doc)

    def find_file(self, database: str, fid) -> dict | None:
        """The GridFS file document with this id in ``videos`` or ``mp3s``, or None."""
        oid = object_id(fid)
        if oid is None:
            return None
        return self.client[database]["fs.files"].find_one({"_id": oid})

    def delete_file(self, database: str, fid) -> None:
        """Delete a GridFS file from ``videos`` or ``mp3s``; one already gone is fine."""
        oid = object_id(fid)
        self.client[database]["fs.files"].delete_one({"_id": oid})
        self.client[database]["fs.chunks"].delete_many({"files_id": oid})
