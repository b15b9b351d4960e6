"""The job lifecycle (common.jobs) on the real nx-27017 and RabbitMQ: fair dispatch, finish,
cancel, expiry, deletion by owner, and what a redelivered message may do."""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import gridfs
import pika
import pytest
from bson import ObjectId

from common.broker import Publisher
from common.jobs import UPLOAD_STALE_SECONDS, UPLOADS, Cancelled, Jobs, OverLimit, Status
from common.settings import LifecycleSettings, MongoSettings
from common.store import MP3S, VIDEOS, Store

pytestmark = pytest.mark.integration


@pytest.fixture
def store(mongodb_uri):
    store = Store(MongoSettings(mongodb_uri, f"mp3test_jobs_{uuid.uuid4().hex[:8]}"))
    yield store
    store.client.drop_database(store.db.name)
    store.close()


@pytest.fixture
def publisher(fresh_vhost):
    publisher = Publisher(fresh_vhost, 3)
    yield publisher
    publisher.close()


@pytest.fixture
def queue(fresh_vhost, publisher):
    """queue(name) -> the messages waiting there (taken off the queue), oldest first."""
    publisher.publish("video", b"{}")  # declares the topology; taken off below
    conn = pika.BlockingConnection(pika.URLParameters(fresh_vhost))
    channel = conn.channel()
    channel.queue_purge("video")

    def take(name: str) -> list[dict]:
        found = []
        while (got := channel.basic_get(name, auto_ack=True))[0] is not None:
            found.append(json.loads(got[2]))
        return found

    yield take
    conn.close()


def upload(store, jobs, publisher, owner: str, data: bytes = b"video bytes") -> dict:
    """A stored video and its job, as the gateway records them."""
    job_id = ObjectId()
    fid = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS).upload_from_stream(
        "clip.mov", data, metadata={"owner": owner, "job_id": str(job_id)})
    return jobs.create(job_id, owner, fid, "clip.mov", "video/quicktime", len(data), publisher)


def convert(store, jobs, publisher, job: dict, mp3: bytes = b"mp3 bytes") -> dict:
    """What a converter does with the job: claim, store an MP3, finish."""
    token = uuid.uuid4().hex
    claimed = jobs.claim(job["_id"], token, 1)
    mp3_fid = gridfs.GridFSBucket(store.db, bucket_name=MP3S).upload_from_stream(
        "clip.mp3", mp3, metadata={"owner": job["owner"], "job_id": str(job["_id"])})
    assert jobs.finish(claimed, token, mp3_fid, len(mp3), 3.0, publisher)
    return jobs.get(job["_id"])


def test_an_owner_has_at_most_conversions_at_once_in_the_queue(store, publisher, queue):
    jobs = Jobs(store, LifecycleSettings(conversions_at_once=2))
    backlog = [upload(store, jobs, publisher, "a@example.com") for _ in range(5)]
    other = upload(store, jobs, publisher, "b@example.com")
    sent = [m["job_id"] for m in queue("video")]
    assert sent == [str(backlog[0]["_id"]), str(backlog[1]["_id"]), str(other["_id"])]
    assert jobs.usage("a@example.com").active_jobs == 5

    # Each end sends the owner's next job: done, failed, or deleted (its message is left for
    # the converter to drop).
    convert(store, jobs, publisher, backlog[0])
    jobs.fail(backlog[1]["_id"], "broken", publisher)
    jobs.delete(backlog[2]["_id"], "a@example.com", publisher)
    assert [m["job_id"] for m in queue("video")] == [str(job["_id"]) for job in backlog[2:]]
    assert jobs.dispatch("a@example.com", publisher) == 0  # two in flight already
    assert [m["job_id"] for m in queue("mp3")] == [str(backlog[0]["_id"]),
                                                   str(backlog[1]["_id"])]


def test_finishing_drops_the_video_unless_videos_are_kept(store, publisher, queue):
    for keep in (False, True):
        jobs = Jobs(store, LifecycleSettings(keep_source_videos=keep))
        job = convert(store, jobs, publisher, upload(store, jobs, publisher, "a@example.com"))
        assert job["status"] == Status.DONE
        assert (store.find_file(VIDEOS, job["video_fid"]) is not None) == keep
        assert jobs.by_mp3(job["mp3_fid"])["_id"] == job["_id"]
        assert abs(job["expires_at"] - (time.time() + 168 * 3600)) < 60


def test_a_deleted_job_cancels_its_conversion(store, publisher, queue):
    jobs = Jobs(store)
    job = upload(store, jobs, publisher, "a@example.com")
    token = uuid.uuid4().hex
    claimed = jobs.claim(job["_id"], token, 1)
    jobs.progress(job["_id"], token, 10.0)
    assert jobs.delete(job["_id"], "a@example.com", publisher)
    with pytest.raises(Cancelled):
        jobs.progress(job["_id"], token, 20.0)
    assert not jobs.finish(claimed, token, ObjectId(), 10, 3.0, publisher)
    assert jobs.get(job["_id"]) is None and store.find_file(VIDEOS, job["video_fid"]) is None
    assert not jobs.delete(job["_id"], "a@example.com", publisher)  # twice: nothing
    assert queue("mp3") == []


def test_only_the_owner_deletes_and_everything_of_the_job_goes(store, publisher, queue):
    jobs = Jobs(store, LifecycleSettings(keep_source_videos=True))
    job = convert(store, jobs, publisher, upload(store, jobs, publisher, "a@example.com"))
    assert not jobs.delete(job["_id"], "b@example.com")
    assert jobs.get(job["_id"]) is not None
    assert jobs.delete(job["_id"], "a@example.com")
    assert store.find_file(VIDEOS, job["video_fid"]) is None
    assert store.find_file(MP3S, job["mp3_fid"]) is None
    assert list(store.chunks(MP3S).find({"files_id": job["mp3_fid"]})) == []


def test_expired_mp3s_are_deleted_and_their_jobs_marked(store, publisher, queue):
    jobs = Jobs(store, LifecycleSettings(mp3_retention_seconds=0.5))
    old = convert(store, jobs, publisher, upload(store, jobs, publisher, "a@example.com"))
    time.sleep(0.6)
    fresh = convert(store, jobs, publisher, upload(store, jobs, publisher, "a@example.com"))
    assert jobs.expire()["expired"] == 1
    gone = jobs.get(old["_id"])
    assert gone["status"] == Status.EXPIRED and gone["expires_at"] == old["expires_at"]
    assert store.find_file(MP3S, old["mp3_fid"]) is None
    assert jobs.by_mp3(old["mp3_fid"])["_id"] == old["_id"]  # a download learns it expired
    assert jobs.get(fresh["_id"])["status"] == Status.DONE
    assert store.find_file(MP3S, fresh["mp3_fid"]) is not None
    assert jobs.usage("a@example.com").bytes == fresh["mp3_size"]
    assert jobs.usage("a@example.com").counts["expired"] == 1
    assert jobs.expire()["expired"] == 0


def test_a_redelivered_message_for_a_finished_job_publishes_nothing_twice(store, publisher,
                                                                         queue):
    jobs = Jobs(store)
    job = convert(store, jobs, publisher, upload(store, jobs, publisher, "a@example.com"))
    assert len(queue("mp3")) == 1
    jobs.republish_result(job, publisher)
    assert queue("mp3") == []


def test_delete_owner_keeps_what_a_later_account_of_the_same_address_made(store, publisher,
                                                                          queue):
    jobs = Jobs(store)
    old = [upload(store, jobs, publisher, "a@example.com") for _ in range(2)]
    mine = upload(store, jobs, publisher, "b@example.com")
    cutoff = time.time() + 0.01
    time.sleep(0.02)
    later = upload(store, jobs, publisher, "a@example.com")
    assert jobs.delete_owner("a@example.com", created_before=cutoff) == 2
    assert all(jobs.get(job["_id"]) is None for job in old)
    assert all(store.find_file(VIDEOS, job["video_fid"]) is None for job in old)
    assert jobs.get(later["_id"]) is not None and jobs.get(mine["_id"]) is not None
    assert jobs.delete_owner("a@example.com") == 1 and jobs.owners() == ["b@example.com"]


def test_uploads_in_progress_count_until_recorded_or_released(store, publisher, queue):
    jobs = Jobs(store)
    first, second, stale = ObjectId(), ObjectId(), ObjectId()
    assert jobs.reserve(first, "a@example.com", 1000).bytes == 0  # the usage before it
    assert jobs.reserve(second, "a@example.com", 0).bytes == 1000
    jobs.resize(second, "a@example.com", 300)
    jobs.reserve(stale, "a@example.com", 5000)
    ago = time.time() - UPLOAD_STALE_SECONDS - 1
    store.db[UPLOADS].update_one({"_id": "a@example.com"},
                                 {"$set": {f"uploads.{stale}.updated_at": ago}})
    usage = jobs.usage("a@example.com")
    assert (usage.bytes, usage.active_jobs) == (1300, 2)  # the stale one no longer counts
    assert jobs.usage("b@example.com").bytes == 0

    # A job recorded while its upload is still counted (create() not yet past its insert):
    # counted once.
    store.jobs.insert_one({"_id": first, "owner": "a@example.com", "status": "queued",
                           "size": 1000})
    usage = jobs.usage("a@example.com")
    assert (usage.bytes, usage.active_jobs) == (1300, 2)
    store.jobs.delete_one({"_id": first})

    fid = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS).upload_from_stream(
        "clip.mov", b"x" * 1000, metadata={"owner": "a@example.com", "job_id": str(first)})
    jobs.create(first, "a@example.com", fid, "clip.mov", "video/quicktime", 1000, publisher)
    jobs.release(second, "a@example.com")
    usage = jobs.usage("a@example.com")
    assert (usage.bytes, usage.active_jobs) == (1000, 1)  # the job alone
    assert set(store.db[UPLOADS].find_one({"_id": "a@example.com"})["uploads"]) == {str(stale)}
    # The sweep removes what no one wrote to since the stale upload (and a record of one
    # upload as the previous release kept them).
    store.db[UPLOADS].update_one({"_id": "a@example.com"}, {"$set": {"updated_at": ago}})
    store.db[UPLOADS].insert_one({"_id": ObjectId(), "owner": "c@example.com", "size": 5,
                                  "updated_at": ago})
    assert jobs.remove_orphans(3600)["stale_uploads"] == 2
    assert store.db[UPLOADS].count_documents({}) == 0


def test_uploads_counted_at_once_take_what_is_free_one_after_the_other(store, publisher,
                                                                       queue):
    """15 uploads counted at the same moment with 9 places free: 9 fit, 6 are refused; 8 of
    300 bytes with 1000 free: 3 fit. Each is checked against those counted before it only."""
    jobs = Jobs(store)
    upload(store, jobs, publisher, "a@example.com")  # one waiting already

    def together(count: int, reserve) -> list:
        ready = threading.Barrier(count, timeout=30)

        def one(_):
            ready.wait()
            try:
                reserve(ObjectId())
            except OverLimit as exc:
                return exc.limit
            return "counted"

        with ThreadPoolExecutor(count) as pool:
            return sorted(pool.map(one, range(count)))

    places = together(15, lambda job_id: jobs.reserve(job_id, "a@example.com", 100,
                                                      max_active=10, max_bytes=10**9))
    assert places == ["active_jobs"] * 6 + ["counted"] * 9, places
    assert jobs.usage("a@example.com").active_jobs == 10

    room = together(8, lambda job_id: jobs.reserve(job_id, "b@example.com", 300,
                                                   max_active=100, max_bytes=1000))
    assert room == ["bytes"] * 5 + ["counted"] * 3, room
    assert jobs.usage("b@example.com").bytes == 900

    # Growing past what it was counted for is checked too; a refusal leaves its count as it was.
    growing = ObjectId()
    jobs.reserve(growing, "c@example.com", 0, max_active=1, max_bytes=1000)
    jobs.resize(growing, "c@example.com", 600, max_bytes=1000)
    with pytest.raises(OverLimit) as refused:
        jobs.resize(growing, "c@example.com", 1200, max_bytes=1000)
    assert refused.value.limit == "bytes" and refused.value.usage.bytes == 0
    assert jobs.usage("c@example.com").bytes == 600
    jobs.resize(growing, "c@example.com", 500, max_bytes=1000)  # the exact size at the end
    assert jobs.usage("c@example.com").bytes == 500
