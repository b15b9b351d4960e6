"""Rate-limit counters in MongoDB, shared by every gateway process and replica."""

import datetime
import threading
import time

import pymongo
import pymongo.errors
from limits.storage import Storage

COLLECTION = "rate_limits"  # in MONGODB_DB; one document per client and limit, removed by TTL
SCHEME = "plain+mongodb"  # storage URI: this prefix, then MONGODB_URI without its "mongodb"
TIMEOUT_MS = 2000  # a MongoDB that does not answer in time counts as down (in-memory fallback)
_ATTEMPTS = 3  # to open a window that another process is opening at the same moment


class MongoCounterStorage(Storage):
    """Fixed-window counters for the ``limits`` library, one document ``{_id, count, expireAt}``.

    A piece of the server seam (common.mongo_compat). The ``limits`` library's own MongoDB
    storage (``mongodb://``) counts with one find_one_and_update whose update is a pipeline
    (``[{"$set": {... "$cond" on "$$NOW" ...}}]``, upserting). nx-27017 (the MongoDB of
    `make run` and the tests; checked with 0.8.1 and ``limits`` 5.8) refuses every update given
    as a pipeline, in update_one and find_one_and_update alike ("'list' object has no attribute
    'keys'"), so no request could be counted there. This one uses only operator updates: a
    filtered ``$inc`` through find_one_and_update, delete_one, insert_one (with its duplicate-key
    error) and a TTL index, which it does not wait for (an ended window is never counted in).
    """

    STORAGE_SCHEME = [SCHEME, f"{SCHEME}+srv"]

    def __init__(self, uri: str, database: str = "mp3converter", collection: str = COLLECTION,
                 wrap_exceptions: bool = False, **client_options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self._uri = uri.removeprefix("plain+")
        self._database = database
        self._collection = collection
        self._client_options = {"serverSelectionTimeoutMS": TIMEOUT_MS,
                                "connectTimeoutMS": TIMEOUT_MS, "socketTimeoutMS": TIMEOUT_MS,
                                **client_options}
        self._client: pymongo.MongoClient | None = None
        self._indexed = False
        self._lock = threading.Lock()

    @property
    def base_exceptions(self):
        """Errors that mean the storage failed (flask-limiter then falls back to memory)."""
        return pymongo.errors.PyMongoError

    @property
    def counters(self):
        """The collection, with its client made on first use (after gunicorn forks)."""
        with self._lock:
            if self._client is None:
                self._client = pymongo.MongoClient(self._uri, tz_aware=True,
                                                   **self._client_options)
            collection = self._client[self._database][self._collection]
            if not self._indexed:
                collection.create_index("expireAt", expireAfterSeconds=0)
                self._indexed = True
        return collection

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Count ``amount`` in the key's current window; open a new window when none is."""
        counters = self.counters
        for _ in range(_ATTEMPTS):
            now = datetime.datetime.now(datetime.UTC)
            doc = counters.find_one_and_update(
                {"_id": key, "expireAt": {"$gt": now}}, {"$inc": {"count": amount}},
                projection={"count": True}, return_document=pymongo.ReturnDocument.AFTER)
            if doc is not None:
                return int(doc["count"])
            # The TTL monitor removes ended windows only about once a minute: do it now.
            counters.delete_one({"_id": key, "expireAt": {"$lte": now}})
            try:
                counters.insert_one({"_id": key, "count": amount,
                                     "expireAt": now + datetime.timedelta(seconds=expiry)})
                return amount
            except pymongo.errors.DuplicateKeyError:
                continue  # another request opened the window first: count in it
        raise pymongo.errors.OperationFailure(f"could not open a rate-limit window for {key}")

    def get(self, key: str) -> int:
        """The count of the key's current window (0 when none is open)."""
        doc = self._current(key)
        return int(doc["count"]) if doc else 0

    def get_expiry(self, key: str) -> float:
        """When the key's current window ends (epoch seconds; now when none is open)."""
        doc = self._current(key)
        return doc["expireAt"].timestamp() if doc else time.time()

    def check(self) -> bool:
        """Whether MongoDB answers (flask-limiter asks while it uses its in-memory fallback)."""
        try:
            self.counters.database.client.admin.command("ping")
        except pymongo.errors.PyMongoError:
            return False
        return True

    def close(self) -> None:
        """Close the MongoDB client, if one was made."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def reset(self) -> int:
        """Remove every counter; returns how many there were."""
        return self.counters.delete_many({}).deleted_count

    def clear(self, key: str) -> None:
        """Remove one key's counter."""
        self.counters.delete_one({"_id": key})

    def _current(self, key: str) -> dict | None:
        now = datetime.datetime.now(datetime.UTC)
        return self.counters.find_one({"_id": key, "expireAt": {"$gt": now}})
