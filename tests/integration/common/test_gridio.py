"""GridFS files written and read chunk by chunk, against the real nx-27017 server."""

import hashlib
import io
import os
import tracemalloc

import gridfs
import pymongo
import pytest

from common.gridio import FileMissing, GridReader
from common.settings import MongoSettings
from common.store import CHUNK_SIZE, VIDEOS, Store

pytestmark = pytest.mark.integration

BIG = 60 * 1024 * 1024 + 12345  # over the 48 MB a single server reply may carry


@pytest.fixture
def store(mongodb_uri):
    store = Store(MongoSettings(mongodb_uri, "gridio_test"))
    yield store
    store.close()


def write(store, data: bytes, piece: int = 256 * 1024):
    writer = store.open_upload(VIDEOS, "big.bin", {"owner": "a@example.com"})
    for i in range(0, len(data), piece):
        writer.write(data[i:i + piece])
    return writer.close()


def test_a_file_larger_than_one_server_reply_round_trips(store):
    data = os.urandom(BIG)
    fid = write(store, data)
    reader = store.open_download(VIDEOS, fid)
    digest = hashlib.sha256()
    while chunk := reader.read(1024 * 1024):
        digest.update(chunk)
    assert reader.length == BIG
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    reader.seek(BIG - 100)
    assert reader.read(1000) == data[-100:]
    reader.seek(-5, io.SEEK_END)
    assert reader.read() == data[-5:]
    reader.seek(CHUNK_SIZE - 3)
    assert reader.read(6) == data[CHUNK_SIZE - 3:CHUNK_SIZE + 3]  # across a chunk boundary
    store.delete_file(VIDEOS, fid)
    with pytest.raises(FileMissing):
        store.open_download(VIDEOS, fid)


def test_writing_holds_a_few_chunks_in_memory_at_most(store):
    piece = os.urandom(256 * 1024)
    tracemalloc.start()
    try:
        writer = store.open_upload(VIDEOS, "stream.bin", {})
        for _ in range(120):  # 30 MiB
            writer.write(piece)
        writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # pymongo's own GridIn batches ~48 MB of chunks before inserting them.
    assert peak < 8 * CHUNK_SIZE, f"peak {peak / 2**20:.1f} MiB while writing 30 MiB"


def test_files_are_standard_gridfs_both_ways(store):
    data = os.urandom(3 * CHUNK_SIZE + 7)
    fid = write(store, data)
    bucket = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS)
    assert bucket.open_download_stream(fid).read() == data
    other = bucket.upload_from_stream("theirs.bin", io.BytesIO(data), chunk_size_bytes=300_000)
    assert store.open_download(VIDEOS, other).read() == data


def test_an_aborted_upload_leaves_no_chunks(store, mongodb_uri):
    writer = store.open_upload(VIDEOS, "partial.bin", {})
    writer.write(os.urandom(3 * CHUNK_SIZE))
    writer.abort()
    client = pymongo.MongoClient(mongodb_uri)
    try:
        db = client["gridio_test"]
        assert list(db["videos.chunks"].find({"files_id": writer.file_id})) == []
        assert db["videos.files"].find_one({"_id": writer.file_id}) is None
    finally:
        client.close()


def test_a_missing_chunk_is_an_error_not_silent_truncation(store):
    fid = write(store, os.urandom(2 * CHUNK_SIZE))
    claims_more = {**store.find_file(VIDEOS, fid), "length": 3 * CHUNK_SIZE}
    reader = GridReader(store.db, VIDEOS, claims_more)
    with pytest.raises(OSError, match="missing chunk 2"):
        reader.read()
