"""The indexes of common.indexes on the real test server (nx-27017): made at start, again
harmlessly, and the queries they serve answer as before."""

import types

from bson import ObjectId

from common import indexes
from common.jobs import Jobs
from common.quotas import Quotas
from common.store import MP3S, VIDEOS


def keys_of(collection) -> set[tuple[str, ...]]:
    return {tuple(index["key"]) for index in collection.list_indexes()}


def test_every_index_is_made_and_making_them_again_changes_nothing(store):
    first = store.ensure_indexes()  # on empty collections, as on a new deployment
    assert not first["failed"], first
    assert len(first["present"]) == len(indexes.INDEXES)
    made = keys_of(store.jobs)
    for index in indexes.INDEXES:
        if index.collection != "jobs":
            continue
        wanted = tuple(field for field, _ in index.keys)
        # nx-27017 cannot index _id in a compound key: it gets the index without it
        assert wanted in made or wanted[:-1] in made and wanted[-1] == "_id", (wanted, made)
    assert ("updated_at",) in keys_of(store.db["uploads"])
    again = store.ensure_indexes()
    assert again == first and keys_of(store.jobs) == made
    # every write still goes through (an index nx-27017 cannot evaluate refuses them all)
    sent = []
    Jobs(store).create(ObjectId(), "a" * 32, ObjectId(), "v.mp4", "video/mp4", 1,
                       types.SimpleNamespace(publish=lambda *args, **_: sent.append(args)))
    assert len(sent) == 1 and store.jobs.find_one({"owner": "a" * 32})["published_at"]
    store.db["uploads"].insert_one({"_id": "a" * 32, "updated_at": 1.0})


def test_the_queries_answer_the_same_with_the_indexes(store):
    owner, other = "a" * 32, "b" * 32
    mp3 = ObjectId()
    store.jobs.insert_many([
        {"_id": ObjectId(), "owner": owner if i % 2 else other, "status": status,
         "size": 10, "mp3_size": 5, "created_at": float(i), "updated_at": float(i),
         "dispatched_at": None if status == "queued" else float(i), "published_at": None,
         **({"mp3_fid": mp3} if i == 3 else {})}
        for i, status in enumerate(["queued", "done", "converting", "done", "failed",
                                    "queued", "queued"])])
    jobs, quotas = Jobs(store), Quotas(store)

    def answers():
        return ([job["created_at"] for job in jobs.of_owner(owner)],
                quotas.usage(owner), jobs.queued_summary(), jobs.by_mp3(mp3)["created_at"],
                jobs._in_flight(owner), jobs.owners(),
                # distinct's order is unspecified (nx-27017's follows the index it uses)
                sorted(store.jobs.distinct("owner", {"status": "queued", "dispatched_at": None})))

    before = answers()
    assert before[0] == [5.0, 3.0, 1.0] and before[2] == (3, 0.0) and before[3] == 3.0
    assert not store.ensure_indexes()["failed"]
    assert answers() == before


def test_files_written_and_read_with_their_indexes(store):
    store.ensure_indexes()
    writer = store.open_upload(VIDEOS, "v.bin", {"owner": "a" * 32, "job_id": "j"})
    writer.write(b"x" * 3000)
    fid = writer.close()
    assert store.open_download(VIDEOS, fid).read() == b"x" * 3000
    assert [doc["_id"] for doc in store.files(VIDEOS).find({"metadata.job_id": "j"})] == [fid]
    store.delete_file(VIDEOS, fid)
    assert store.find_file(VIDEOS, fid) is None and store.find_file(MP3S, fid) is None
