"""Rate-limit counters on the real nx-27017."""

import secrets
import threading
import time

import pymongo
import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from gateway import ratelimit_storage

pytestmark = pytest.mark.integration


@pytest.fixture
def storage(mongodb_uri):
    """A counter storage in a database of its own, built as flask-limiter builds it."""
    database = f"mp3test_limits_{secrets.token_hex(4)}"
    yield storage_from_string(f"plain+{mongodb_uri}", database=database,
                              collection=ratelimit_storage.COLLECTION)
    pymongo.MongoClient(mongodb_uri).drop_database(database)


def test_a_window_admits_its_amount_then_refuses_until_it_ends(storage):
    limiter = FixedWindowRateLimiter(storage)
    limit = parse("3 per 2 seconds")
    assert [limiter.hit(limit, "client-a") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(limit, "client-b")  # each key counts alone
    reset, remaining = limiter.get_window_stats(limit, "client-a")
    assert remaining == 0 and 0 < reset - time.time() <= 2
    time.sleep(reset - time.time() + 0.1)
    assert limiter.hit(limit, "client-a")  # a new window
    assert limiter.get_window_stats(limit, "client-a").remaining == 2


def test_concurrent_hits_are_each_counted_once(storage):
    counts: list[int] = []

    def hit() -> None:
        for _ in range(5):
            counts.append(storage.incr("flood", 60))

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 101))
    assert storage.get("flood") == 100


def test_windows_expire_through_a_ttl_index_and_can_be_cleared(storage):
    storage.incr("gone", 60)
    indexes = storage.counters.index_information().values()
    assert any(ix["key"] == [("expireAt", 1)] and ix.get("expireAfterSeconds") == 0
               for ix in indexes)
    storage.clear("gone")
    assert storage.get("gone") == 0
    storage.incr("one", 60)
    storage.incr("two", 60)
    assert storage.reset() == 2 and storage.get("one") == 0
    assert storage.check()
