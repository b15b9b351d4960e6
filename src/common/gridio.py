"""GridFS files written and read chunk by chunk with plain queries, in bounded memory: the
GridFS part of common.mongo_compat, used in place of pymongo's GridIn and GridOut.

They store the standard GridFS layout (`<bucket>.files`, `<bucket>.chunks`), so any GridFS
client reads what they write, and they read what any GridFS client wrote. They keep at most one
chunk (writing) or READ_BATCH chunks (reading) in memory. pymongo's own classes do not:

- GridIn (``GridFSBucket.open_upload_stream``) buffers up to 48 MB of chunks per open file
  before inserting them, on any server.
- GridOut (``GridFSBucket.open_download_stream``) reads the rest of the file through one query,
  and again from the new position after each seek. nx-27017 answers a chunk query with every
  matching chunk in one reply, whatever the batch size, and pymongo refuses a reply over 48 MB:
  on nx-27017, GridOut cannot read a file larger than that at all.

Measured on nx-27017 0.8.1 with pymongo 4.20 (a 200 MB file, 1 MiB chunks, written and read
64 KiB at a time; peak resident memory of the client process and of the server):

=========================  ===========================  ==============================
                           pymongo's GridIn / GridOut   GridWriter / GridReader
=========================  ===========================  ==============================
write 200 MB               18.7 s, client 169 MB,       20.8 s, client 38 MB,
                           server 440 MB                server 54 MB
read 200 MB                fails: "Message length       2.3 s, client 55 MB,
                           (209726992) is larger than   server 106 MB
                           server max message size"
20 seeks + 256 KiB reads   fails likewise; 3.1 s on a   1.2 s (0.8 s on 40 MB)
                           40 MB file
=========================  ===========================  ==============================
"""

import datetime as dt
import io

from bson import Binary, ObjectId
from pymongo.errors import OperationFailure

READ_BATCH = 8  # chunks fetched per query when reading on (1, 2, 4, then 8 a query from a seek)


class FileMissing(LookupError):
    """No GridFS file with that id."""


class GridWriter:
    """A GridFS file being written; its `.files` document is written last, by ``close()``."""

    def __init__(self, db, bucket: str, filename: str, metadata: dict, chunk_size: int):
        self._files, self._chunks = db[f"{bucket}.files"], db[f"{bucket}.chunks"]
        self.file_id = ObjectId()
        self.filename, self.metadata, self.chunk_size = filename, metadata, chunk_size
        self.length = 0
        self._buffer = bytearray()
        self._n = 0

    def write(self, data: bytes) -> None:
        """Append ``data``; full chunks are inserted at once."""
        self._buffer += data
        self.length += len(data)
        while len(self._buffer) >= self.chunk_size:
            self._insert(bytes(self._buffer[: self.chunk_size]))
            del self._buffer[: self.chunk_size]

    def _insert(self, data: bytes) -> None:
        self.put(self._n, data)
        self._n += 1

    def put(self, n: int, data: bytes) -> None:
        """Insert chunk ``n`` as it is, in any order (converter.upload): the caller makes every
        chunk but the last a whole ``chunk_size``, sets ``length``, and never also calls
        ``write``."""
        self._chunks.insert_one({"files_id": self.file_id, "n": n, "data": Binary(data)})

    def close(self) -> ObjectId:
        """Write the last chunk and the file document; returns the file id."""
        if self._buffer:
            self._insert(bytes(self._buffer))
            self._buffer.clear()
        self._files.insert_one({
            "_id": self.file_id, "length": self.length, "chunkSize": self.chunk_size,
            "uploadDate": dt.datetime.now(dt.UTC), "filename": self.filename,
            "metadata": self.metadata})
        return self.file_id

    def has_chunk(self, n: int) -> bool:
        """Whether the server holds chunk ``n`` of this file now."""
        return self._chunks.find_one({"files_id": self.file_id, "n": n}, {"n": 1}) is not None

    def abort(self) -> None:
        """Remove every chunk written so far (and any file document a server made for them)."""
        self._buffer.clear()
        self._chunks.delete_many({"files_id": self.file_id})
        try:
            self._files.delete_one({"_id": self.file_id})
        except OperationFailure:
            pass  # nx-27017 answers "File with id ... not found" where there is none


class GridReader(io.RawIOBase):
    """A seekable, read-only view of a stored GridFS file."""

    def __init__(self, db, bucket: str, file_doc: dict):
        super().__init__()
        self._chunks = db[f"{bucket}.chunks"]
        self.file_id = file_doc["_id"]
        self.length = int(file_doc["length"])
        self.chunk_size = int(file_doc["chunkSize"])
        self._position = 0
        self._cache: dict[int, bytes] = {}
        self._batch = 1  # chunks the next query fetches: a reader that seeks and reads a
        # little (ffmpeg looking for an index at the end) never fetches 8 MiB for it

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.length}[whence]
        self._position = max(0, base + offset)
        return self._position

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the current position (all that is left when negative)."""
        end = self.length if size is None or size < 0 else min(self.length, self._position + size)
        parts = []
        while self._position < end:
            n, offset = divmod(self._position, self.chunk_size)
            chunk = self._chunk(n)
            part = chunk[offset: offset + end - self._position]
            if not part:
                raise OSError(f"GridFS file {self.file_id} is missing chunk {n}")
            parts.append(part)
            self._position += len(part)
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _chunk(self, n: int) -> bytes:
        if n not in self._cache:
            following = n - 1 in self._cache  # reading on from the last batch
            self._batch = min(READ_BATCH, self._batch * 2) if following else 1
            self._cache = {
                doc["n"]: bytes(doc["data"])
                for doc in self._chunks.find(
                    {"files_id": self.file_id, "n": {"$gte": n, "$lt": n + self._batch}}
                ).sort("n", 1)
            }
        return self._cache.get(n, b"")
