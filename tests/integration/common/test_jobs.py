"""The job lifecycle (common.jobs) on the real nx-27017 and RabbitMQ: fair dispatch, finish,
cancel, expiry, deletion by owner, and what a redelivered message may do."""

import json
import time
import uuid

import gridfs
import pika
import pytest
from bson import ObjectId

from common import covers
from common.jobs import Cancelled, Jobs, Status
from common.quotas import Quotas
from common.settings import LifecycleSettings
from common.store import MP3S, VIDEOS
from ops import upkeep

pytestmark = pytest.mark.integration


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


def convert(store, jobs, publisher, job: dict, mp3: bytes = b"mp3 bytes",
            cover: bytes | None = None) -> dict:
    """What a converter does with the job: claim, store an MP3 (and its cover), finish."""
    token = uuid.uuid4().hex
    claimed = jobs.claim(job["_id"], token, 1)
    mp3_fid = gridfs.GridFSBucket(store.db, bucket_name=MP3S).upload_from_stream(
        "clip.mp3", mp3, metadata={"owner": job["owner"], "job_id": str(job["_id"])})
    details = {"cover": None, "cover_fid": None}
    if cover is not None:
        details = {"cover": {"width": 1, "height": 1, "size": len(cover)},
                   "cover_fid": covers.save(store, claimed, cover)}
    assert jobs.finish(claimed, token, mp3_fid, len(mp3), 3.0, publisher, details)
    return jobs.get(job["_id"])


def test_an_owner_has_at_most_conversions_at_once_in_the_queue(store, publisher, queue):
    jobs = Jobs(store, LifecycleSettings(conversions_at_once=2))
    backlog = [upload(store, jobs, publisher, "a@example.com") for _ in range(5)]
    other = upload(store, jobs, publisher, "b@example.com")
    sent = [m["job_id"] for m in queue("video")]
    assert sent == [str(backlog[0]["_id"]), str(backlog[1]["_id"]), str(other["_id"])]
    assert Quotas(store).usage("a@example.com").active_jobs == 5

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
    assert upkeep.expire(jobs)["expired"] == 1
    gone = jobs.get(old["_id"])
    assert gone["status"] == Status.EXPIRED and gone["expires_at"] == old["expires_at"]
    assert store.find_file(MP3S, old["mp3_fid"]) is None
    assert jobs.by_mp3(old["mp3_fid"])["_id"] == old["_id"]  # a download learns it expired
    assert jobs.get(fresh["_id"])["status"] == Status.DONE
    assert store.find_file(MP3S, fresh["mp3_fid"]) is not None
    usage = Quotas(store).usage("a@example.com")
    assert usage.bytes == fresh["mp3_size"] and usage.counts["expired"] == 1
    assert upkeep.expire(jobs)["expired"] == 0


def test_a_cover_goes_with_its_mp3_when_the_job_is_deleted_or_expires(store, publisher,
                                                                       queue):
    jobs = Jobs(store, LifecycleSettings(mp3_retention_seconds=0.5))
    made = [convert(store, jobs, publisher, upload(store, jobs, publisher, "a@example.com"),
                    cover=b"\xff\xd8 picture %d" % n) for n in range(3)]
    for job in made:
        assert covers.load(store, job["cover_fid"]) == b"\xff\xd8 picture %d" % made.index(job)
    deleted, expired, lost = made
    assert jobs.expire(lost, reason="its MP3 was not in the backup")  # the MP3 alone goes
    assert jobs.delete(deleted["_id"], "a@example.com")
    time.sleep(0.6)
    assert upkeep.expire(jobs)["expired"] == 1
    for job in made:
        assert store.find_file(MP3S, job["mp3_fid"]) is None
        assert store.find_file(MP3S, job["cover_fid"]) is None
        assert list(store.chunks(MP3S).find({"files_id": job["cover_fid"]})) == []
    assert jobs.get(expired["_id"])["status"] == Status.EXPIRED


def test_the_sweep_keeps_a_cover_while_its_job_is_done_and_no_longer(store, publisher, queue):
    jobs = Jobs(store)
    job = convert(store, jobs, publisher, upload(store, jobs, publisher, "a@example.com"),
                  cover=b"\xff\xd8 kept")
    stray = covers.save(store, job, b"\xff\xd8 never recorded")  # a converter stopped
    gone = convert(store, jobs, publisher, upload(store, jobs, publisher, "a@example.com"),
                   cover=b"\xff\xd8 of an expired job")
    store.jobs.update_one({"_id": gone["_id"]}, {"$set": {"status": Status.EXPIRED.value}})
    counts = upkeep.remove_orphans(jobs, -60)  # every file is old enough
    assert counts["orphan_files"] == 2, counts  # the stray, and the expired job's cover
    assert covers.load(store, job["cover_fid"]) == b"\xff\xd8 kept"
    assert store.find_file(MP3S, job["mp3_fid"]) is not None
    assert store.find_file(MP3S, stray) is None and store.find_file(MP3S, gone["cover_fid"]) is None


def test_a_restore_that_lost_a_cover_file_keeps_the_job_and_its_mp3(store, publisher, queue):
    jobs = Jobs(store)
    whole, partial, lost, no_mp3 = (
        convert(store, jobs, publisher, upload(store, jobs, publisher, "a@example.com"),
                cover=b"\xff\xd8" + bytes(300)) for _ in range(4))
    store.chunks(MP3S).delete_many({"files_id": partial["cover_fid"]})
    store.delete_file(MP3S, lost["cover_fid"])
    store.delete_file(MP3S, no_mp3["mp3_fid"])
    counts = upkeep.reconcile_restored(jobs)
    assert counts == {"expired": 1, "failed": 0, "requeued": 0, "covers_dropped": 2}, counts
    assert jobs.get(whole["_id"]) == whole
    for job in (partial, lost):
        after = jobs.get(job["_id"])
        assert after["status"] == Status.DONE and after["cover_fid"] is None
        assert after["cover"] == job["cover"]  # ops migrate takes it out of the MP3 again
        assert store.find_file(MP3S, job["cover_fid"]) is None
        assert store.find_file(MP3S, job["mp3_fid"]) is not None
    assert jobs.get(no_mp3["_id"])["status"] == Status.EXPIRED
    assert store.find_file(MP3S, no_mp3["cover_fid"]) is None
    assert upkeep.reconcile_restored(jobs)["covers_dropped"] == 0


def test_a_redelivered_message_for_a_finished_job_publishes_nothing_twice(store, publisher,
                                                                         queue):
    jobs = Jobs(store)
    job = convert(store, jobs, publisher, upload(store, jobs, publisher, "a@example.com"))
    assert len(queue("mp3")) == 1
    jobs.republish_result(job, publisher)
    assert queue("mp3") == []



def test_the_result_goes_out_before_the_video_is_deleted_and_a_redelivery_deletes_it(
        store, publisher, queue, monkeypatch):
    # The converter stops (killed, its connection lost) right after the email's message went
    # out: the owner hears of the MP3 at once; the redelivered message then drops the video.
    jobs = Jobs(store)
    job = upload(store, jobs, publisher, "a@example.com")
    token = uuid.uuid4().hex
    claimed = jobs.claim(job["_id"], token, 1)
    mp3_fid = gridfs.GridFSBucket(store.db, bucket_name=MP3S).upload_from_stream("clip.mp3", b"x")

    def stopped(*_args, **_kwargs):
        raise KeyboardInterrupt("the converter stops here")

    with monkeypatch.context() as patch:
        patch.setattr(jobs, "drop_video", stopped)
        with pytest.raises(KeyboardInterrupt):
            jobs.finish(claimed, token, mp3_fid, 1, 3.0, publisher)
    assert [m["mp3_fid"] for m in queue("mp3")] == [str(mp3_fid)]
    done = jobs.get(job["_id"])
    assert done["status"] == Status.DONE and done.get("video_deleted_at") is None
    assert store.find_file(VIDEOS, job["video_fid"]) is not None
    jobs.republish_result(done, publisher)
    assert queue("mp3") == []
    assert store.find_file(VIDEOS, job["video_fid"]) is None
    assert jobs.get(job["_id"])["video_deleted_at"]

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


def _walk(jobs: Jobs, owner: str, limit: int) -> list[list[dict]]:
    """Every page of the owner's list, following each page's last job."""
    pages, after = [], None
    while True:
        found, more = jobs.page(owner, limit, after)
        pages.append(found)
        if not more:
            return pages
        after = (found[-1]["created_at"], found[-1]["_id"])


def test_pages_of_jobs_created_at_the_same_instant_skip_and_repeat_none(store):
    jobs = Jobs(store)
    instant = 1_767_000_000.123
    ids = [ObjectId() for _ in range(250)]
    store.jobs.insert_many([{"_id": oid, "owner": "a@example.com", "status": "done",
                             "created_at": instant} for oid in ids])
    store.jobs.insert_many([{"_id": ObjectId(), "owner": "b@example.com", "status": "done",
                             "created_at": instant} for _ in range(5)])
    pages = _walk(jobs, "a@example.com", 60)
    assert [len(page) for page in pages] == [60, 60, 60, 60, 10]
    assert [job["_id"] for page in pages for job in page] == sorted(ids, reverse=True)
    assert jobs.page("a@example.com", 200) == (jobs.of_owner("a@example.com"), True)
    assert len(jobs.of_owner("b@example.com")) == 5


def test_pages_are_newest_first_and_ties_are_ordered_by_id(store):
    jobs = Jobs(store)
    docs = [{"_id": ObjectId(), "owner": "a@example.com", "status": "done",
             "created_at": 1_767_000_000.0 + (i // 3) * 0.001} for i in range(20)]
    store.jobs.insert_many(list(reversed(docs)))
    expected = sorted(docs, key=lambda d: (d["created_at"], d["_id"]), reverse=True)
    for limit in (1, 2, 3, 7, 20, 200):
        pages = _walk(jobs, "a@example.com", limit)
        assert [job["_id"] for page in pages for job in page] == [d["_id"] for d in expected]
        assert all(len(page) == limit for page in pages[:-1])
    last = expected[-1]
    assert jobs.page("a@example.com", 5, (last["created_at"], last["_id"])) == ([], False)
    assert jobs.page("nobody@example.com", 5) == ([], False)
