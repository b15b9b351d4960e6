"""Every query the services and the operator commands send is served by an index of
common.indexes (or by ``_id``): the queries are recorded as the real code sends them, against
collections that answer nothing, and each is matched with the table."""

import types

import pymongo
import pytest
from bson import ObjectId

from common import covers, indexes, mongo_compat, resumable
from common.gridio import GridReader
from common.jobs import Jobs
from common.quotas import Quotas
from common.settings import LifecycleSettings
from common.store import MP3S, VIDEOS, Store
from common.webhooks import Webhooks
from ops import migrate, upkeep
from ops.lease import Lease

# Queries that read every document on purpose (a listing, or an upgrade of each one).
WHOLE = {("jobs", "ops.migrate.upgrade_jobs"), ("videos.files", "remove_orphans"),
         ("mp3s.files", "remove_orphans"), ("usage", "reconcile_usage")}


class Cursor(list):
    """An empty cursor that records its sort."""

    def __init__(self, record):
        super().__init__()
        self._record = record

    def sort(self, key, direction=None):
        self._record["sort"] = [(key, direction)] if isinstance(key, str) else list(key)
        return self

    def limit(self, _n):
        return self


class Collection:
    """A collection holding nothing that records each query's filter and sort."""

    def __init__(self, name, seen):
        self.name, self._seen = name, seen

    def _note(self, query, sort=None, distinct=None):
        record = {"collection": self.name, "filter": dict(query or {}), "sort": sort,
                  "distinct": distinct}
        self._seen.append(record)
        return record

    def find(self, query=None, projection=None, **_):
        return Cursor(self._note(query))

    def find_one(self, query=None, projection=None, sort=None, **_):
        self._note(query, sort)

    def find_one_and_update(self, query, update, sort=None, **_):
        self._note(query, sort)

    def find_one_and_delete(self, query, **_):
        self._note(query)

    def count_documents(self, query, **_):
        self._note(query)
        return 0

    def distinct(self, key, query=None):
        self._note(query, distinct=key)
        return []

    def aggregate(self, pipeline):
        self._note(pipeline[0]["$match"])
        return []

    def _write(self, query, *_args, **_kwargs):
        self._note(query)
        return types.SimpleNamespace(matched_count=0, modified_count=0, deleted_count=0)

    update_one = update_many = delete_one = delete_many = _write

    def insert_one(self, doc):
        return types.SimpleNamespace(inserted_id=doc.get("_id") or ObjectId())


class Database(dict):
    name = "mp3test"

    def __init__(self, seen):
        super().__init__()
        self._seen = seen

    def __missing__(self, name):
        self[name] = Collection(name, self._seen)
        return self[name]


@pytest.fixture
def recorded():
    """Each query of the services' code, as it is sent; labelled by what sent it."""
    seen: list[dict] = []
    store = Store.__new__(Store)
    store.db = Database(seen)
    store.jobs = store.db["jobs"]
    jobs = Jobs(store, LifecycleSettings())
    quotas = Quotas(store)
    owner, oid = "a" * 32, ObjectId()
    hooks = Webhooks(store)
    answer = types.SimpleNamespace(status=200, duration=0.1, error=None, ok=True)
    job = {"_id": oid, "owner": owner, "video_fid": ObjectId(), "mp3_fid": ObjectId(),
           "cover_fid": ObjectId(), "status": "done", "updated_at": 1.0}
    calls = {
        "Jobs.get": lambda: jobs.get(oid, owner),
        "Jobs.of_owner": lambda: jobs.of_owner(owner),
        "Jobs.by_mp3": lambda: jobs.by_mp3(oid),
        "Jobs.queued_summary": jobs.queued_summary,
        "Jobs.owners": jobs.owners,
        "Jobs.dispatch": lambda: jobs.dispatch(owner, publisher=None),
        "Jobs.claim": lambda: jobs.claim(oid, "token", 1),
        "Jobs.expire": lambda: jobs.expire(job),
        "Jobs.delete": lambda: jobs.delete(oid, owner),
        "Jobs._remove_files": lambda: jobs._remove_files(job),
        "Jobs.delete_owner": lambda: jobs.delete_owner(owner, created_before=5.0),
        "Jobs.hand_over": lambda: jobs.hand_over(owner, "b" * 32),
        "Quotas.usage": lambda: quotas._usage(owner, {"uploads": {str(oid): {
            "size": 1, "updated_at": 1e12}}}),
        "Quotas.release": lambda: quotas.release(oid, owner),
        "Quotas.remove_stale_uploads": quotas.remove_stale_uploads,
        "recover_unpublished": lambda: upkeep.recover_unpublished(jobs, 60, None),
        "recover_stuck": lambda: upkeep.recover_stuck(jobs, 60, 3, None),
        "upkeep.expire": lambda: upkeep.expire(jobs),
        "remove_orphans": lambda: upkeep.remove_orphans(jobs, 60),
        "reconcile_restored": lambda: upkeep.reconcile_restored(jobs),
        "reconcile_usage": lambda: upkeep.reconcile_usage(jobs, 10),
        "Quotas.reconcile": lambda: quotas.reconcile(owner, settle=0),
        "Store.find_file": lambda: store.find_file(VIDEOS, oid),
        "Store.delete_file": lambda: store.delete_file(MP3S, oid),
        "GridReader.read": lambda: GridReader(store.db, VIDEOS, {
            "_id": oid, "length": 0, "chunkSize": 1}).seek(0) or GridReader(
            store.db, VIDEOS, {"_id": oid, "length": 9, "chunkSize": 4})._chunk(1),
        "count_chunks": lambda: mongo_compat.count_chunks(store.chunks(MP3S), oid, 3),
        "covers.load": lambda: covers.load(store, oid),
        "ops.migrate.upgrade_jobs": lambda: migrate.upgrade_jobs(store, 60),
        "ops.migrate.extract_covers": lambda: migrate.extract_covers(store),
        "ops.migrate._chunks": lambda: list(migrate._chunks(store.chunks(VIDEOS), {
            "_id": oid, "length": 0, "chunkSize": 4})),
        "Lease.release": lambda: Lease(store.db, "sweep", 60).release(),
        "resumable.remove_expired": lambda: resumable.remove_expired(store),
        "resumable.unfinished_file_ids": lambda: resumable.unfinished_file_ids(store),
        "resumable.remove_owner": lambda: resumable.remove_owner(store, owner),
        "Webhooks.create": lambda: hooks.create(owner, "https://93.184.216.34/", ["job.done"],
                                                at_most=10),
        "Webhooks.subscribed": lambda: hooks.subscribed(owner, "job.done"),
        "Webhooks.get": lambda: hooks.get(oid, owner),
        "Webhooks.delete_owner": lambda: hooks.delete(oid, owner),
        "Webhooks.was_sent": lambda: hooks.was_sent("msg_1"),
        "Webhooks.forget_sent": lambda: hooks.forget_sent(),
        "Webhooks.record": lambda: hooks.record({"_id": oid, "owner": owner}, "msg_1",
                                                "job.done", 1, answer, kept=50),
        "Webhooks.recent": lambda: hooks.recent(oid),
    }
    queries = []
    for label, call in calls.items():
        start = len(seen)
        call()
        queries += [{**record, "by": label} for record in seen[start:]]
    return queries


def fields_of(query: dict) -> set[str]:
    """The fields a filter constrains (``$and``/``$or`` are not used by the services)."""
    return {field for field in query if not field.startswith("$")}


def served(record: dict) -> bool:
    """Whether an index of the table (or ``_id``) leads with a field the query constrains,
    and holds the field it sorts by."""
    fields = fields_of(record["filter"])
    if record["distinct"] and not fields:
        fields = {record["distinct"]}
    if "_id" in fields:
        return True
    for index in indexes.INDEXES:
        keys = [field for field, _ in index.keys]
        if index.collection != record["collection"] or keys[0] not in fields:
            continue
        if all(field in keys for field, _ in record["sort"] or []):
            return True
    return False


def test_every_query_is_served_by_an_index_or_reads_everything_on_purpose(recorded):
    assert len(recorded) > 40
    unserved = [record for record in recorded if not served(record)
                and not (not fields_of(record["filter"])
                         and (record["collection"], record["by"]) in WHOLE)]
    assert not unserved, unserved


def test_each_index_serves_some_recorded_query(recorded):
    """No index in the table that nothing uses (each costs every write)."""
    for index in indexes.INDEXES:
        lead = index.keys[0][0]
        assert any(r["collection"] == index.collection
                   and (lead in fields_of(r["filter"]) or r["distinct"] == lead)
                   for r in recorded), index


def test_the_jobs_list_and_the_dispatch_are_served_in_their_sort_order():
    by_key = {index.keys: index for index in indexes.INDEXES if index.collection == "jobs"}
    assert (("owner", 1), ("created_at", -1), ("_id", -1)) in by_key  # GET /jobs, paged
    assert (("owner", 1), ("status", 1), ("dispatched_at", 1), ("created_at", 1)) in by_key
    chunks = [index for index in indexes.INDEXES if index.collection.endswith(".chunks")]
    # GridFS's own index, as drivers make it (same name, unique): making it again is a no-op
    assert {(i.name, i.unique) for i in chunks} == {("files_id_1_n_1", True)}


class Server(dict):
    """A database of fake collections on a server that says what it is (buildInfo)."""

    def __init__(self, collection, process=None):
        super().__init__({name: collection(name) for name in indexes.COLLECTIONS})
        info = {"version": "7.0.0", **({"process": process} if process else {})}
        self.client = types.SimpleNamespace(admin=types.SimpleNamespace(
            command=lambda name: info))


class Made:
    """A collection that makes every index asked for, or refuses all (no privilege)."""

    def __init__(self, name, refuse=False):
        self.name, self.made, self.refuse = name, [], refuse

    def create_indexes(self, models):
        [model] = models
        if self.refuse:
            raise pymongo.errors.OperationFailure("not authorized to execute createIndexes",
                                                  code=13)
        self.made.append(list(model.document["key"].items()))


def test_mongodb_gets_the_jobs_list_index_with_id_and_nx_27017_without_it():
    mongodb = Server(Made)
    assert not indexes.ensure(mongodb, ("jobs",))["failed"]
    assert [("owner", 1), ("created_at", -1), ("_id", -1)] in mongodb["jobs"].made
    nx = Server(Made, process="nx_27017")  # it would accept it, then refuse every insert
    assert not indexes.ensure(nx, ("jobs",))["failed"]
    assert [("owner", 1), ("created_at", -1)] in nx["jobs"].made
    assert all(field != "_id" for keys in nx["jobs"].made for field, _ in keys)
    assert len(nx["jobs"].made) == len(mongodb["jobs"].made)


def test_an_index_that_cannot_be_made_is_logged_and_the_rest_are_still_made(caplog):
    db = Server(lambda name: Made(name, refuse=name == "uploads"))
    done = indexes.ensure(db)
    assert done["failed"] == ["uploads.updated_at_1"]
    assert len(done["present"]) == len(indexes.INDEXES) - 1
    assert "could not create an index" in caplog.text


def test_a_mongodb_that_does_not_answer_ends_the_round_at_once():
    class Down(Made):
        calls = 0

        def create_indexes(self, _models):
            Down.calls += 1
            raise pymongo.errors.ServerSelectionTimeoutError("no server")

    done = indexes.ensure(Server(Down))
    assert Down.calls == 1 and len(done["failed"]) == 1 and not done["present"]
