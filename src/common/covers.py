"""A job's cover picture as a GridFS file of its own: a small JPEG in the MP3S bucket, beside
the MP3 that also embeds it, named by the job's ``cover_fid``.

The converter writes it with the MP3 (``python -m ops migrate`` for jobs of earlier releases,
which kept it only inside the MP3's ID3 tag); the gateway serves it (GET /jobs/<id>/cover);
``common.jobs`` deletes it with the MP3. Being in the MP3S bucket, it is backed up, restored,
handed over and reached by the same roles as the MP3s; ``metadata.kind`` tells it apart.
"""

from pathlib import PurePath

from bson import ObjectId

from common.gridio import FileMissing
from common.store import MP3S, Store

KIND = "cover"  # metadata.kind of a cover file (an MP3 has none)
CONTENT_TYPE = "image/jpeg"
MAX_BYTES = 4 << 20  # a cover is tens of kilobytes (at most 600 px); a larger file is none


def is_cover(doc: dict | None) -> bool:
    """Whether an MP3S file document is a cover picture, not an MP3."""
    return bool(doc) and (doc.get("metadata") or {}).get("kind") == KIND


def save(store: Store, job: dict, jpeg: bytes) -> ObjectId:
    """Store ``jpeg`` as the cover file of ``job`` (its ``_id``, ``owner``, ``filename``);
    its id, for the job's ``cover_fid``."""
    name = PurePath(job.get("filename") or "audio").stem + ".jpg"
    metadata = {"owner": job["owner"], "job_id": str(job["_id"]), "kind": KIND,
                "content_type": CONTENT_TYPE}
    writer = store.open_upload(MP3S, name, metadata)
    try:
        writer.write(jpeg)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def load(store: Store, fid) -> bytes | None:
    """The JPEG of the cover file ``fid``; None when there is none (no id, gone, incomplete,
    or not a cover file)."""
    doc = store.find_file(MP3S, fid)
    if not is_cover(doc) or int(doc.get("length") or 0) > MAX_BYTES:
        return None
    try:
        with store.open_download(MP3S, doc["_id"]) as reader:
            return reader.read(MAX_BYTES)
    except (FileMissing, OSError):  # deleted since, or a chunk missing
        return None
