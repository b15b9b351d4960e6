"""MongoDB in mongodump's directory layout, read and written through pymongo, streamed.

``<db>/<collection>.bson.gz``: the collection's documents as concatenated BSON, gzipped (the
bytes the server returned, never decoded); ``<db>/<collection>.metadata.json``: mongodump's
JSON, ``{"options", "indexes": [{"v": 2, "key", "name", ...}], "uuid", "collectionName",
"type"}``. The real ``mongorestore --gzip --dir SET/mongodb`` restores such a directory.
"""

import gzip
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import bson
import pymongo
from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from common.store import BUCKETS
from ops.manifest import HashingWriter

log = logging.getLogger(__name__)

# The order of the copy (README: Backups and restore): the jobs first, then the files, each
# bucket's file documents before their chunks. The collections are copied one after the other,
# not as one snapshot: a job finds every file it referred to unless the file was deleted while
# the copy ran (restore reconciles that), and a file written meanwhile has no job (an orphan,
# removed by the sweep). A file document is written after its last chunk, so every file in a
# set has all its chunks.
COLLECTIONS = ("jobs", "uploads", "rate_limits",
               *(f"{bucket}.{part}" for bucket in BUCKETS for part in ("files", "chunks")))
# Derived from the jobs, not copied: a set holds none, a restore removes what the target held,
# and each owner's is computed again from the restored jobs (common.quotas) before it is read.
DERIVED = ("usage",)
RAW = CodecOptions(document_class=RawBSONDocument)
GZIP_LEVEL = 1  # GridFS holds MP3s and videos, compressed already: fast beats small
CHUNK_BATCH = 8  # GridFS chunks (1 MiB each) per cursor batch: what the dump holds at once
DOC_BATCH = 500
INSERT_BYTES = 8 * 1024 * 1024  # a restore inserts at most this much in one insert_many
INDEX_OPTIONS = ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression",
                 "collation", "weights", "default_language", "language_override",
                 "textIndexVersion", "2dsphereIndexVersion", "bits", "min", "max")
GRIDFS_INDEXES = {
    "files": [{"v": 2, "key": {"filename": 1, "uploadDate": 1},
               "name": "filename_1_uploadDate_1"}],
    "chunks": [{"v": 2, "key": {"files_id": 1, "n": 1}, "name": "files_id_1_n_1",
                "unique": True}],
}
ID_INDEX = {"v": 2, "key": {"_id": 1}, "name": "_id_"}


def _gridfs_part(name: str) -> str | None:
    """``files`` or ``chunks`` for a GridFS collection of the product's buckets, else None."""
    bucket, _, part = name.rpartition(".")
    return part if bucket in BUCKETS and part in GRIDFS_INDEXES else None


def collection_names(db) -> list[str]:
    """Every collection to copy: the product's, in the order above, then any other the
    server lists (a MongoDB-compatible server may list a GridFS bucket's collections under
    names of its own, such as ``videos_files``: those are the bucket's, copied already)."""
    aliases = {f"{bucket}_{part}" for bucket in BUCKETS for part in GRIDFS_INDEXES}
    others = sorted(name for name in db.list_collection_names()
                    if name not in COLLECTIONS and name not in aliases
                    and name not in DERIVED
                    and not name.startswith("system."))
    return [*COLLECTIONS, *others]


# -- the files ---------------------------------------------------------------------------------
def metadata(name: str, indexes: list[dict]) -> dict:
    """mongodump's metadata document of a collection."""
    return {"options": {}, "indexes": indexes, "uuid": "", "collectionName": name,
            "type": "collection"}


def write_collection(directory: Path, name: str, documents: Iterable,
                     indexes: list[dict]) -> tuple[int, dict[str, dict]]:
    """Write ``<name>.bson.gz`` from ``documents`` (raw BSON: bytes or RawBSONDocument) and
    ``<name>.metadata.json``, hashing while writing; (documents written, {file name: entry})."""
    count = 0
    data = HashingWriter(directory / f"{name}.bson.gz")
    try:
        with gzip.GzipFile(filename="", mode="wb", fileobj=data, compresslevel=GZIP_LEVEL,
                           mtime=0) as out:
            for doc in documents:
                out.write(doc.raw if isinstance(doc, RawBSONDocument) else doc)
                count += 1
    finally:
        data.close()
    meta = HashingWriter(directory / f"{name}.metadata.json")
    try:
        meta.write(json_util.dumps(metadata(name, indexes),
                                   json_options=json_util.RELAXED_JSON_OPTIONS).encode())
    finally:
        meta.close()
    return count, {data.path.name: data.entry, meta.path.name: meta.entry}


def read_documents(path: Path) -> Iterator[RawBSONDocument]:
    """The documents of a ``.bson.gz``, one at a time, undecoded."""
    with gzip.open(path, "rb") as f:
        yield from bson.decode_file_iter(f, codec_options=RAW)


def read_metadata(path: Path) -> dict:
    """A ``.metadata.json``."""
    return json_util.loads(Path(path).read_text())


# -- the server --------------------------------------------------------------------------------
def index_specs(db, name: str) -> list[dict]:
    """The collection's indexes as mongodump writes them. A GridFS collection gets the indexes
    every driver makes for it (a compatible server may report internal ones of its own)."""
    part = _gridfs_part(name)
    if part:
        return [ID_INDEX, *GRIDFS_INDEXES[part]]
    specs = []
    for index in db[name].list_indexes():
        spec = {"v": 2, "key": dict(index["key"]), "name": index["name"]}
        spec.update({key: index[key] for key in INDEX_OPTIONS if key in index})
        specs.append(spec)
    return specs or [ID_INDEX]


def documents(db, name: str, projection: dict | None = None) -> Iterator[RawBSONDocument]:
    """Every document of the collection, streamed in cursor batches. Chunks are read file by
    file, a few at a time and in order (some compatible servers, nx-27017 among them, answer
    chunk queries only by ``files_id`` and ignore the batch size), then those of no file at all
    (an upload being written or broken off)."""
    coll = db.get_collection(name, codec_options=RAW)
    if _gridfs_part(name) != "chunks":
        yield from coll.find({}, projection, batch_size=DOC_BATCH)
        return
    files = db[f"{name.rpartition('.')[0]}.files"]
    for doc in files.find({}, {"_id": 1, "length": 1, "chunkSize": 1}, batch_size=DOC_BATCH):
        expected = -(-int(doc.get("length") or 0) // int(doc.get("chunkSize") or 1))
        yield from _chunks_of(coll, doc["_id"], expected, projection)
    for files_id in coll.distinct("files_id"):
        if files.find_one({"_id": files_id}, {"_id": 1}) is None:
            yield from _chunks_of(coll, files_id, 0, projection)


def _chunks_of(coll, files_id, expected: int, projection) -> Iterator[RawBSONDocument]:
    """The chunks of one file, CHUNK_BATCH at a time: every one its length needs, and any
    after them."""
    n = 0
    while True:
        window = list(coll.find({"files_id": files_id, "n": {"$gte": n, "$lt": n + CHUNK_BATCH}},
                                projection).sort("n", pymongo.ASCENDING))
        yield from window
        n += CHUNK_BATCH
        if not window and n >= expected:
            return


def count(db, name: str) -> int:
    """How many documents the collection holds, counted as ``documents`` reads them."""
    if _gridfs_part(name) == "chunks":
        return sum(1 for _ in documents(db, name, {"n": 1}))
    return sum(1 for _ in documents(db, name, {"_id": 1}))


def dump_database(db, directory: Path) -> tuple[dict[str, int], dict[str, dict]]:
    """Copy every collection of ``db`` into ``directory`` (``SET/mongodb/<db>``), one after
    the other; ({collection: documents}, {file name: manifest entry})."""
    directory.mkdir(parents=True)
    counts, entries = {}, {}
    for name in collection_names(db):
        counts[name], written = write_collection(directory, name, documents(db, name),
                                                 index_specs(db, name))
        entries.update(written)
        log.info("collection copied", extra={"collection": name, "documents": counts[name]})
    return counts, entries


def _batches(docs: Iterable[RawBSONDocument]) -> Iterator[list[RawBSONDocument]]:
    batch, size = [], 0
    for doc in docs:
        batch.append(doc)
        size += len(doc.raw)
        if size >= INSERT_BYTES or len(batch) >= DOC_BATCH:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def restore_order(names: Iterable[str]) -> list[str]:
    """``names`` with each bucket's chunks before its file documents: a reader never finds a
    file whose chunks are not there yet."""
    names = list(names)
    return sorted(names, key=lambda n: (names.index(n.replace(".chunks", ".files"))
                                        if _gridfs_part(n) == "chunks" else names.index(n),
                                        _gridfs_part(n) != "chunks"))


def drop_collections(db, names: Iterable[str]) -> None:
    """Drop these collections, all before anything is restored (a compatible server, nx-27017,
    cannot write a GridFS bucket of which one collection alone was dropped)."""
    for name in names:
        db.drop_collection(name)


def restore_collection(db, directory: Path, name: str) -> tuple[int, int]:
    """Insert the collection's documents in batches and create its indexes; (documents
    inserted, indexes created)."""
    coll = db.get_collection(name, codec_options=RAW)
    inserted = 0
    for batch in _batches(read_documents(directory / f"{name}.bson.gz")):
        coll.insert_many(batch, ordered=True)
        inserted += len(batch)
    created = 0
    for spec in read_metadata(directory / f"{name}.metadata.json").get("indexes", []):
        if spec.get("name") == "_id_":
            continue
        options = {key: spec[key] for key in INDEX_OPTIONS if key in spec}
        db[name].create_index(list(spec["key"].items()), name=spec["name"], **options)
        created += 1
    return inserted, created
