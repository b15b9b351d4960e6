"""The server seam against the real nx-27017: each piece does what plain pymongo means."""

import os

import pytest
from bson import ObjectId

from common import mongo_compat
from common.settings import MongoSettings
from common.store import CHUNK_SIZE, MP3S, Store

pytestmark = pytest.mark.integration

DATABASE = "mongo_compat_test"


@pytest.fixture
def store(mongodb_uri):
    store = Store(MongoSettings(mongodb_uri, DATABASE))
    yield store
    store.client.drop_database(DATABASE)
    store.close()


def test_object_id_equals_matches_that_id_only(store):
    wanted, other = ObjectId(), ObjectId()
    things = store.db["things"]
    things.insert_many([{"name": "wanted", "ref": wanted}, {"name": "other", "ref": other},
                        {"name": "none", "ref": None}])
    assert [d["name"] for d in things.find({"ref": mongo_compat.object_id_equals(wanted)})] == [
        "wanted"]
    assert things.update_one({"ref": mongo_compat.object_id_equals(other)},
                             {"$set": {"seen": True}}).matched_count == 1
    assert things.find_one({"ref": mongo_compat.object_id_equals(ObjectId())}) is None


def test_a_file_is_deleted_once_and_a_second_delete_is_fine(store):
    writer = store.open_upload(MP3S, "a.mp3", {"owner": "a" * 32})
    writer.write(os.urandom(2 * CHUNK_SIZE + 1))
    fid = writer.close()
    store.delete_file(MP3S, fid)
    assert store.find_file(MP3S, fid) is None
    assert list(store.chunks(MP3S).find({"files_id": fid})) == []
    store.delete_file(MP3S, fid)  # already gone
    store.delete_file(MP3S, ObjectId())  # never there
    store.delete_file(MP3S, "not an id")


def test_deleting_a_missing_file_document_leaves_the_others(store):
    kept = store.open_upload(MP3S, "kept.mp3", {})
    kept.write(b"x" * 10)
    fid = kept.close()
    mongo_compat.delete_file_document(store.files(MP3S), ObjectId())
    assert store.open_download(MP3S, fid).read() == b"x" * 10



def test_chunks_of_a_file_past_one_reply_are_counted(store):
    """60 MB: more than one reply may carry, were every chunk asked for at once; and the same
    file written without its tenth chunk (a restore cut short)."""
    block = os.urandom(CHUNK_SIZE)
    count = 60 * 1024 * 1024 // CHUNK_SIZE
    writer = store.open_upload(MP3S, "big.mp3", {})
    for _ in range(count):
        writer.write(block)
    fid = writer.close()
    assert mongo_compat.count_chunks(store.chunks(MP3S), fid, count) == count
    gap = ObjectId()
    store.chunks(MP3S).insert_many([{"files_id": gap, "n": n, "data": block}
                                    for n in range(count) if n != 9])
    assert mongo_compat.count_chunks(store.chunks(MP3S), gap, count) == count - 1


def test_count_matches_what_a_find_returns(store):
    things = store.db["things"]
    things.insert_many([{"owner": f"o{i % 3}", "status": ["queued", "converting", "done"][i % 3],
                         "dispatched_at": None if i % 4 else 1.0} for i in range(40)])
    for query in ({}, {"owner": "o1"}, {"status": {"$in": ["queued", "converting"]}},
                  {"owner": "o0", "status": {"$in": ["queued", "done"]},
                   "dispatched_at": {"$ne": None}}, {"owner": "nobody"}):
        assert mongo_compat.count(things, query) == len(list(things.find(query))), query


def test_find_sorted_returns_what_a_sorted_find_returns(store):
    """The same documents in the same order as find().sort().limit(): ties on the first key
    ordered by the second, a null or missing field matched by None."""
    things = store.db["things"]
    docs = [{"_id": ObjectId(), "owner": f"o{i % 2}", "created_at": 1_767_000_000.0 + i // 4,
             "size": i} for i in range(30)]
    for i, doc in enumerate(docs):
        if i % 3 == 0:
            doc["dispatched_at"] = None
        elif i % 3 == 1:
            doc["dispatched_at"] = 5.0
    things.insert_many(docs)
    order = [("created_at", -1), ("_id", -1)]
    for query in ({"owner": "o1"}, {"owner": "o0", "dispatched_at": None},
                  {"owner": "o0", "created_at": {"$lte": docs[13]["created_at"]}}):
        for limit in (1, 5, 100):
            expected = list(things.find(query).sort(order).limit(limit))
            assert mongo_compat.find_sorted(things, query, order, limit) == expected
    oldest = mongo_compat.find_sorted(things, {"owner": "o0", "dispatched_at": None},
                                      [("created_at", 1)], 1)
    assert [doc["_id"] for doc in oldest] == [docs[0]["_id"]]
