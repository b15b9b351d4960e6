"""Where MongoDB access departs from plain pymongo, each piece for one server quirk.

Production runs MongoDB; `make run` and the tests run nx-27017 (a MongoDB wire-protocol server on
SQLite; 0.8.1 when these were last checked). Each piece below does the standard thing on
MongoDB and also works on nx-27017. Everything else talks to MongoDB as pymongo documents it.

- ``object_id_equals(oid)``, a filter value: nx-27017 matches no document when a filter's only
  condition is equality to an ObjectId on a field other than ``_id`` (``{"mp3_fid": oid}`` and
  ``{"mp3_fid": {"$eq": oid}}`` alike, in find, update and delete). ``{"$in": [oid]}``, which
  MongoDB treats as that equality, matches.
- ``delete_file_document(files, oid)``: nx-27017 keeps GridFS buckets in tables of its own and
  answers a delete of a ``<bucket>.files`` document that is not there with an error ("File with
  id ... not found"); MongoDB deletes nothing and says so.
- ``GridWriter`` and ``GridReader`` (common.gridio), in place of pymongo's GridIn and GridOut:
  nx-27017 answers a ``<bucket>.chunks`` query with every matching chunk in one reply whatever
  the batch size, so GridOut (one query for the rest of the file) cannot read a file over the
  48 MB a reply may carry, and pymongo's GridIn holds up to 48 MB per open file on any server.
  Measurements are in common.gridio.
- ``count(collection, query)``, for ``collection.count_documents(query)``: pymongo sends that as
  an aggregation ``$match`` + ``$group`` on a constant, which nx-27017 runs in Python over the
  whole collection (0.7 s at 10,000 jobs, 8-11 s at 100,000, whatever the indexes); a ``$match``
  + ``$count`` pipeline it runs in SQL, with the indexes (0.9 ms and 7 ms). MongoDB answers both
  alike. A condition nx-27017 runs in SQL is an equality or a range on a field; ``$in`` on a
  field other than ``_id``, or ``$lt`` on ``_id``, is run in Python over what the rest selects
  (counting one owner's queued and converting jobs with ``status: {$in: [...]}`` took 105 ms at
  100,000 stored jobs, once per status 10-13 ms): callers count one value at a time.
- ``find_sorted(collection, query, sort, limit)``, for ``find(query).sort(sort).limit(limit)``:
  nx-27017 sorts a find's matches in Python, all of them (the newest 201 of one owner's 10,000
  jobs: 324 ms at 100,000 stored, the first of their queued jobs 248 ms); an aggregation's
  ``$match`` + ``$sort`` + ``$limit`` it runs in SQL with the indexes (19 ms and 7 ms). MongoDB
  answers both from the same index.
  Both are aggregations, and nx-27017 counts the whole collection before each one (its storage
  layer sizes an aggregation's result before running it: ``SELECT COUNT(1)`` on the table,
  3.8 ms at 100,000 jobs, 0.8 ms at 20), whatever the pipeline: a hot path runs as few as it can
  (``Jobs.dispatch`` looks for a waiting job before counting those in flight).
- ``count_chunks(chunks, files_id, expected)``: nx-27017 cannot count chunks
  (``count_documents`` on a ``<bucket>.chunks`` fails), ignores a query's projection there, and
  answers in one reply: a ``find`` of all of a big file's chunks, even asking for ``n`` alone,
  fails past 48 MB. They are counted a window of ``n`` at a time.
- Chunks written one by one (gateway.resumable, a tus upload): nx-27017 keeps a bucket's chunks
  in a table keyed by its own integer ids, makes an empty ``<bucket>.files`` document (length 0,
  no metadata) with a file's first chunk, and cannot remove or change one chunk: a
  ``delete_many`` on ``files_id`` and ``n`` removes every chunk of the file, a ``replace_one`` or
  ``update_one`` of one chunk matches none. Finding one (``files_id`` and an ``n`` range) works.
  So a chunk is written once and never rewritten (one already there is kept), the file document
  is inserted last (nx-27017 then fills in the empty one), and the sweep takes neither for an
  orphan while the upload is received (``common.resumable.unfinished_file_ids``).
- gateway.ratelimit_storage, in place of the ``limits`` library's MongoDB storage: that one
  counts with an update pipeline, which nx-27017 refuses. It lives with the gateway, the only
  user of ``limits``.

Not a piece of this module, but chosen for the same server: timestamps are stored as epoch
seconds (common.store.now), not dates. nx-27017 returns a date set through an update (``$set``,
``$max``) as a string, and sorts those strings apart from the dates it stored on insert.
"""

import pymongo.errors
from bson import ObjectId

from common.gridio import GridReader, GridWriter

__all__ = ["GridReader", "GridWriter", "count", "count_chunks", "delete_file_document",
           "find_sorted", "object_id_equals"]
COUNT_WINDOW = 8  # chunks a counting query may return (their data too, on nx-27017)


def object_id_equals(oid: ObjectId) -> dict:
    """A filter value matching a field equal to ``oid`` (for fields other than ``_id``)."""
    return {"$in": [oid]}


def delete_file_document(files, oid: ObjectId) -> None:
    """Delete the ``<bucket>.files`` document ``oid`` of the collection ``files``; one that is
    not there is fine."""
    try:
        files.delete_one({"_id": oid})
    except pymongo.errors.OperationFailure:
        if files.find_one({"_id": oid}, {"_id": 1}) is not None:
            raise


def count(collection, query: dict) -> int:
    """How many documents of ``collection`` match ``query``."""
    found = list(collection.aggregate([{"$match": query}, {"$count": "n"}]))
    return int(found[0]["n"]) if found else 0


def find_sorted(collection, query: dict, sort: list[tuple[str, int]], limit: int) -> list[dict]:
    """The first ``limit`` documents of ``collection`` matching ``query`` in the order of
    ``sort`` ((field, direction) pairs)."""
    return list(collection.aggregate([{"$match": query}, {"$sort": dict(sort)},
                                      {"$limit": int(limit)}]))


def count_chunks(chunks, files_id: ObjectId, expected: int) -> int:
    """How many of the chunks ``0 .. expected - 1`` of file ``files_id`` the ``<bucket>.chunks``
    collection ``chunks`` holds."""
    found = 0
    for start in range(0, expected, COUNT_WINDOW):
        found += len(list(chunks.find(
            {"files_id": files_id, "n": {"$gte": start, "$lt": start + COUNT_WINDOW}},
            {"_id": 1})))
    return found
