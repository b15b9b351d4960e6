"""An upload's file on its way into GridFS: nothing is stored before its first bytes look like
audio or video (``gateway.sniff``)."""

import logging
import os

from bson import ObjectId

from common import options
from common.store import VIDEOS, Store
from gateway import sniff
from gateway.refusals import UploadRejected

log = logging.getLogger(__name__)


class Video:
    """One upload's file, written as its chunks arrive once its first PROBE_BYTES (or all of
    it, when shorter) are known to be media."""

    def __init__(self, store: Store, job_id, owner: str, filename: str, content_type: str):
        self.filename = clean_name(filename)
        self.content_type = content_type
        self._store = store
        self._metadata = {"owner": owner, "job_id": str(job_id), "content_type": content_type}
        self._head, self._writer = b"", None

    def write(self, data: bytes, last: bool) -> None:
        """The next chunk of the file (``last``: its final one)."""
        if self._writer is not None:
            self._writer.write(data)
            return
        self._head += data
        if self._head and (last or len(self._head) >= sniff.PROBE_BYTES):
            self.start()

    def start(self) -> None:
        """Check the first bytes, then open the GridFS file and write them (once): 400 for an
        empty file, refused as such rather than as "not media", 415 for one that is not media."""
        if self._writer is not None:
            return
        check_head(self._head)
        self._writer = self._store.open_upload(VIDEOS, self.filename, self._metadata)
        self._writer.write(self._head)

    def close(self) -> ObjectId:
        """The file is complete (after ``start``); its GridFS id."""
        self._writer.close()
        return self._writer.file_id

    def abort(self) -> None:
        """Remove what was written of it, if anything."""
        if self._writer is not None:
            try:
                self._writer.abort()
            except Exception:  # noqa: BLE001
                log.warning("could not remove a partial upload", exc_info=True)


def check_head(head: bytes) -> None:
    """The content check of every upload, on its first PROBE_BYTES (or all of it, when
    shorter): 400 for an empty file, refused as such rather than as "not media", 415 for one
    that is not media (UploadRejected)."""
    if not head:
        raise UploadRejected(400, "the uploaded file is empty")
    if sniff.media_type(head[: sniff.PROBE_BYTES]) is None:
        raise UploadRejected(415, "this file does not look like audio or video")


def clean_name(name: str) -> str:
    """The file's base name without directories or control characters."""
    base = os.path.basename(name.replace("\\", "/"))
    return options.clean_text(base).strip()[:255] or "video"
