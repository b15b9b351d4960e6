"""A backup set's MongoDB files are mongodump's layout, and its manifest catches any change."""

import datetime as dt
import gzip
import json

import bson
import pytest
from bson import ObjectId
from bson.raw_bson import RawBSONDocument

from ops import manifest, mongodump


def test_a_collection_round_trips_through_bson_gz_and_metadata_json(tmp_path):
    docs = [{"_id": ObjectId(), "n": i, "data": bytes([i]) * 1000,
             "at": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "tags": ["é", {"x": None}]}
            for i in range(50)]
    raw = [RawBSONDocument(bson.encode(d)) for d in docs[:25]] + [bson.encode(d)
                                                                 for d in docs[25:]]
    indexes = [mongodump.ID_INDEX, {"v": 2, "key": {"expireAt": 1}, "name": "expireAt_1",
                                    "expireAfterSeconds": 0}]
    count, entries = mongodump.write_collection(tmp_path, "jobs", raw, indexes)

    assert count == 50 and set(entries) == {"jobs.bson.gz", "jobs.metadata.json"}
    # what mongorestore reads: gzip of concatenated BSON documents, decoded as they were
    with gzip.open(tmp_path / "jobs.bson.gz", "rb") as f:
        back = list(bson.decode_file_iter(f, codec_options=bson.CodecOptions(tz_aware=True)))
    assert back == docs
    assert [d.raw for d in mongodump.read_documents(tmp_path / "jobs.bson.gz")] == [
        bson.encode(d) for d in docs]
    meta = json.loads((tmp_path / "jobs.metadata.json").read_text())
    assert meta == {"options": {}, "uuid": "", "collectionName": "jobs", "type": "collection",
                    "indexes": [{"v": 2, "key": {"_id": 1}, "name": "_id_"},
                                {"v": 2, "key": {"expireAt": 1}, "name": "expireAt_1",
                                 "expireAfterSeconds": 0}]}
    for name, entry in entries.items():
        assert entry == manifest.file_digest(tmp_path / name)


def test_an_empty_collection_is_an_empty_gzip_stream(tmp_path):
    count, _ = mongodump.write_collection(tmp_path, "uploads", [], [mongodump.ID_INDEX])
    assert count == 0 and gzip.decompress((tmp_path / "uploads.bson.gz").read_bytes()) == b""


def test_gridfs_collections_get_the_drivers_indexes_and_restore_chunks_first():
    assert mongodump.index_specs(None, "videos.chunks")[1] == {
        "v": 2, "key": {"files_id": 1, "n": 1}, "name": "files_id_1_n_1", "unique": True}
    assert mongodump.restore_order(mongodump.COLLECTIONS) == [
        "jobs", "uploads", "rate_limits", "videos.chunks", "videos.files", "mp3s.chunks",
        "mp3s.files"]


def _set(tmp_path):
    (tmp_path / "mongodb").mkdir()
    (tmp_path / "mongodb" / "a.bson.gz").write_bytes(b"\x1f\x8b" + bytes(100))
    (tmp_path / "b.sql.gz").write_bytes(b"sql")
    files = {rel: manifest.file_digest(tmp_path / rel) for rel in ("mongodb/a.bson.gz",
                                                                   "b.sql.gz")}
    manifest.write(tmp_path, {"files": files})
    return tmp_path


def test_the_manifest_check_names_a_flipped_byte_a_missing_and_an_extra_file(tmp_path):
    root = _set(tmp_path)
    assert manifest.check(root)["files"]
    data = bytearray((root / "mongodb" / "a.bson.gz").read_bytes())
    data[50] ^= 1
    (root / "mongodb" / "a.bson.gz").write_bytes(bytes(data))
    with pytest.raises(manifest.SetDamaged, match="a.bson.gz: checksum does not match"):
        manifest.check(root)
    (root / "mongodb" / "a.bson.gz").unlink()
    with pytest.raises(manifest.SetDamaged, match=r"a.bson.gz: missing \(listed in"):
        manifest.check(root)
    (root / "mongodb" / "a.bson.gz").write_bytes(bytes(data))
    (root / "stray").write_text("x")
    with pytest.raises(manifest.SetDamaged, match="stray: not listed in backup.json"):
        manifest.check(root)
    with pytest.raises(manifest.SetDamaged, match="no such file"):
        manifest.check(tmp_path / "mongodb")
