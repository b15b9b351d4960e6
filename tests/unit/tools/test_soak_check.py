"""The soak's checker finds what it must: a lost job or email, a duplicate, an email after a
deletion, a refusal that kept a job, a file at fault dead-lettered, an orphan file. And its
schedule plays every fault kind once, in the run, never overlapping as planned."""

import time
from types import SimpleNamespace

import pytest
from bson import ObjectId

from notification.mail import compose
from tools.mailsink import StoreHandler
from tools.soak import faults
from tools.soak.check import Checker
from tools.soak.load import Upload
from tools.soak.report import percentile, worst_wait

CONFIG = SimpleNamespace(smtp=SimpleNamespace(sender="mp3converter@localhost"),
                         public_url="http://gw")
OWNER, USER = "a" * 32, "user@example.com"


class Collection:
    """The little of a pymongo collection the checker reads."""

    def __init__(self):
        self.docs: list[dict] = []

    def find(self, query=None, projection=None):
        return [d for d in self.docs if all(d.get(k) == v for k, v in (query or {}).items())]

    def distinct(self, key):
        return list({d[key] for d in self.docs})


class Database(dict):
    def __missing__(self, name):
        self[name] = Collection()
        return self[name]


@pytest.fixture
def world(tmp_path):
    """A database, a mailbox, uploads; helpers to fill them as the services would."""
    db, mail, uploads = Database(), StoreHandler(tmp_path / "mail"), []

    def upload(name: str, status=202, expected="done", label="short", **extra) -> Upload:
        one = Upload(user=USER, owner=OWNER, filename=name, label=label, kind=label,
                     options={}, expected=expected, gateway="http://gw", sent_at=time.time(),
                     answered_at=time.time(), status=status, **extra)
        if status == 202:
            one.job_id = str(ObjectId())
        uploads.append(one)
        return one

    def job(one: Upload, status="done", job_id=None, mp3s=1, emails=1, error=None,
            cover=False) -> dict:
        doc = {"_id": ObjectId(job_id or one.job_id or str(ObjectId())), "owner": OWNER,
               "filename": one.filename, "status": status, "error": error,
               "notification": "sent", "notified_at": time.time()}
        job_id = str(doc["_id"])
        for _ in range(mp3s):
            fid = ObjectId()
            db["mp3s.files"].docs.append({"_id": fid, "filename": "x.mp3",
                                          "metadata": {"job_id": job_id}})
            db["mp3s.chunks"].docs.append({"files_id": fid})
            doc["mp3_fid"] = fid
        if cover:  # the MP3's cover picture, a file of its own in the same bucket
            doc["cover_fid"] = ObjectId()
            db["mp3s.files"].docs.append({"_id": doc["cover_fid"], "filename": "x.jpg",
                                          "metadata": {"job_id": job_id, "kind": "cover"}})
            db["mp3s.chunks"].docs.append({"files_id": doc["cover_fid"]})
        db["jobs"].docs.append(doc)
        for _ in range(emails):
            message = compose(CONFIG, USER, job_id, one.filename,
                              str(doc.get("mp3_fid")) if status == "done" else None, error)
            mail.store("mp3converter@localhost", [USER], message.as_bytes())
        return doc

    def check(dead=None):
        checker = Checker(uploads, db, tmp_path / "mail", email_grace=15)
        return checker.run(dead or {"video": [], "mp3": []}, [])

    return SimpleNamespace(db=db, upload=upload, job=job, check=check)


def categories(verdict) -> list[tuple[str, str | None]]:
    return sorted((f.category, f.filename) for f in verdict.findings)


def test_jobs_that_ended_once_with_their_mp3_and_email_pass(world):
    world.job(world.upload("a.mp4"))
    world.job(world.upload("b.mp4", expected="failed"), status="failed", mp3s=0,
              error="the video has no audio track")
    kept = world.upload("c.mp4", status=None)  # no answer, yet its job was made and ran
    world.job(kept, job_id=str(ObjectId()))
    world.upload("d.mp4", status=429)
    verdict = world.check()
    assert verdict.findings == []
    assert verdict.unanswered_kept == 1 and len(verdict.latencies) == 3


def test_a_cover_picture_is_neither_a_second_mp3_nor_an_orphan(world):
    world.job(world.upload("with-cover.mp4"), cover=True)
    world.db["mp3s.files"].docs.append({"_id": ObjectId(), "filename": "x.jpg",
                                        "metadata": {"job_id": "gone", "kind": "cover"}})
    verdict = world.check()
    assert [f.what for f in verdict.findings] == [
        f"orphan mp3s file {world.db['mp3s.files'].docs[-1]['_id']} after the sweep"]


def test_lost_and_duplicated_are_counted_per_upload(world):
    world.job(world.upload("no-email.mp4"), emails=0)
    world.job(world.upload("two-emails.mp4"), emails=2)
    world.job(world.upload("two-mp3s.mp4"), mp3s=2, emails=1)
    world.upload("vanished.mp4")  # accepted, no job, nobody deleted it
    verdict = world.check()
    assert categories(verdict) == [("duplicated", "two-emails.mp4"),
                                   ("duplicated", "two-mp3s.mp4"),
                                   ("lost", "no-email.mp4"), ("lost", "vanished.mp4"),
                                   ("unexplained", None)]  # the MP3 the job does not name
    assert verdict.count("lost") == 2 and verdict.count("duplicated") == 2


def test_an_email_long_after_the_deletion_and_a_refusal_that_kept_a_job_are_unexplained(world):
    deleted = world.upload("deleted.mp4")
    deleted.delete = {"sent_at": time.time() - 100, "answered_at": time.time() - 99,
                      "status": 204, "seen": "converting"}
    world.job(deleted)
    world.db["jobs"].docs.clear()  # the job is gone, its email came after all
    world.db["mp3s.files"].docs.clear()
    world.db["mp3s.chunks"].docs.clear()
    refused = world.upload("refused.mp4", status=503)
    world.job(refused, job_id=str(ObjectId()), emails=0)
    verdict = world.check()
    assert [f.category for f in verdict.findings] == ["unexplained"] * 3
    assert "after the job's deletion began" in verdict.findings[0].what
    assert any("refused with 503 yet kept" in f.what for f in verdict.findings)


def test_a_file_at_fault_in_a_dead_letter_queue_and_an_orphan_file_are_unexplained(world):
    corrupt = world.upload("corrupt.mp4", expected="failed", label="corrupt")
    world.job(corrupt, status="failed", mp3s=0, error="not a video")
    world.db["mp3s.files"].docs.append({"_id": ObjectId(), "metadata": {"job_id": "gone"}})
    letters = {"video": [{"job_id": corrupt.job_id, "reason": "gave up"}], "mp3": []}
    verdict = world.check(letters)
    whats = [f.what for f in verdict.findings]
    assert any("file at fault (corrupt) went to video.dlq" in w for w in whats)
    assert any(w.startswith("orphan mp3s file") for w in whats)


@pytest.mark.parametrize("seconds", [60, 600])
def test_the_schedule_has_every_kind_within_the_run_in_order(seconds):
    planned = faults.plan(seconds, seed=7)
    assert set(faults.KINDS) <= {p.kind for p in planned}
    starts = [p.at for p in planned]
    assert starts == sorted(starts) and 0 < starts[0] and starts[-1] < seconds
    assert faults.plan(seconds, seed=7) == planned  # the seed decides
    if seconds == 600:  # a full run: holds as documented, room for each fault before the next
        assert {p.kind: p.hold for p in planned}["smtp_down"] == 60
        for one, nxt in zip(planned, planned[1:], strict=False):
            assert one.at + one.hold <= nxt.at


def test_the_worst_wait_is_measured_against_calm_jobs_of_the_same_kind():
    def up(at: float) -> Upload:
        return Upload(user=USER, owner=OWNER, filename="f", label="long", kind="long",
                      options={}, expected="done", gateway="g", sent_at=at, answered_at=at,
                      job_id=str(at))

    outage = faults.Fault("smtp_down", "mailsink", 0, 60, start=100.0, end=160.0)
    latencies = [(up(0), 2.0), (up(10), 3.0), (up(20), 4.0), (up(90), 75.0)]
    worst = worst_wait(latencies, [outage])
    assert worst["seconds"] == 72.0 and worst["job_id"] == "90" and worst["baseline"] == 3.0
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3 and percentile([], 0.5) is None
