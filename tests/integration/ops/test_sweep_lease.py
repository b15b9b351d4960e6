"""One sweep at a time: `python -m ops sweep` run twice at once (a CronJob overlapping itself, an
operator beside `make run`'s loop) against nx-27017 and RabbitMQ. The one that holds the lease
does the work, the other says it skipped; a crashed sweep's lease is taken over once it
expires; a long sweep keeps its lease; and two sweeps overlapping all the same (one stalled
past its lease) still publish every job once."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import gridfs
import pika
import pytest
from bson import ObjectId

from common import messages, topology
from common.broker import Publisher
from common.jobs import Jobs, Status
from common.settings import LifecycleSettings, MongoSettings
from common.store import VIDEOS, Store
from ops import sweep as sweep_module
from ops.config import OpsConfig
from ops.lease import COLLECTION, Lease, LeaseHeld, LeaseLost
from tools import devstack
from tools.processes import ROOT, free_port

pytestmark = pytest.mark.integration

OWNERS = 30  # each with one job whose message never went out and one waiting for its turn
STUCK = 5  # jobs whose converter stopped responding
LEASE_SECONDS = 3

# `python -m ops sweep`, started at the wall-clock moment argv[1] (so that two begin together
# however long each took to import); with argv[2] == "crash" it is killed (SIGKILL) once it
# holds the lease, before any step; with "slow" its first step waits argv[3] seconds first.
DRIVER = """
import os, signal, sys, time
from ops import sweep
from ops.__main__ import cli
start, mode = float(sys.argv[1]), sys.argv[2]
if mode == "crash":
    def crash(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    sweep.sweep = crash
elif mode == "slow":
    real = sweep.sweep
    def slow(*args, **kwargs):
        time.sleep(float(sys.argv[3]))
        return real(*args, **kwargs)
    sweep.sweep = slow
time.sleep(max(0.0, start - time.time()))
cli(["sweep"])
"""


@pytest.fixture
def env(mongodb_uri, vhost):
    """The sweep's environment: a fresh MONGODB_DB, the module's vhost (queues empty), and an
    AUTH_URL nothing listens on (the deleted accounts step then does nothing)."""
    values = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
              "MONGODB_URI": mongodb_uri, "MONGODB_DB": f"mp3test_sweep_{secrets.token_hex(4)}",
              "RABBITMQ_URL": vhost, "AUTH_URL": f"http://127.0.0.1:{free_port()}",
              "UNPUBLISHED_JOB_SECONDS": "1", "STUCK_JOB_SECONDS": "1",
              "SWEEP_LEASE_SECONDS": str(LEASE_SECONDS), "LOG_LEVEL": "INFO"}
    yield values
    store = store_of(values)
    store.client.drop_database(values["MONGODB_DB"])
    store.close()


def store_of(env: dict) -> Store:
    return Store(MongoSettings(env["MONGODB_URI"], env["MONGODB_DB"]))


def lost_work(env: dict) -> set[str]:
    """Jobs as an outage leaves them, every one due for the sweep: per owner one dispatched
    whose message never went out and one waiting for its turn; and STUCK jobs converting,
    silent. Returns the ids of every job the sweep must publish, once each."""
    store = store_of(env)
    # conversions_at_once=0: recorded without publishing anything
    jobs = Jobs(store, LifecycleSettings(conversions_at_once=0))
    bucket = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS)
    made = {"unpublished": [], "waiting": [], "stuck": []}
    for n in range(OWNERS * 2 + STUCK):
        owner = f"{n % OWNERS:032x}" if n < OWNERS * 2 else f"{0xabc0 + n:032x}"
        job_id = ObjectId()
        fid = bucket.upload_from_stream("clip.mov", b"video bytes",
                                        metadata={"owner": owner, "job_id": str(job_id)})
        jobs.create(job_id, owner, fid, "clip.mov", "video/quicktime", 11, publisher=None)
        kind = "unpublished" if n < OWNERS else "waiting" if n < OWNERS * 2 else "stuck"
        made[kind].append(job_id)
    long_ago = time.time() - 60
    store.jobs.update_many({"_id": {"$in": made["unpublished"]}},
                           {"$set": {"dispatched_at": long_ago, "updated_at": long_ago}})
    store.jobs.update_many({"_id": {"$in": made["stuck"]}},
                           {"$set": {"status": Status.CONVERTING.value, "attempts": 1,
                                     "dispatched_at": long_ago, "published_at": long_ago,
                                     "updated_at": long_ago}})
    store.close()
    return {str(job_id) for ids in made.values() for job_id in ids}


def video_messages(url: str) -> Counter:
    """Take every message off `video`: how many times each job id came."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        seen = Counter()
        while (got := channel.basic_get(topology.VIDEO, auto_ack=True))[0] is not None:
            seen[messages.decode(messages.VideoMessage, got[2]).job_id] += 1
        return seen
    finally:
        connection.close()


def start_sweep(env: dict, at: float, mode: str = "plain", *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(at), mode, *args],
                            env=devstack.process_env(env), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def result(process: subprocess.Popen, timeout: float = 60) -> tuple[dict, str]:
    """(the JSON line a sweep printed last, everything it printed); asserts it exited 0."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"sweep exited {process.returncode}:\n{out}{err}"
    return json.loads(out.splitlines()[-1]), out


def sweep_once(env: dict) -> dict:
    return result(start_sweep(env, 0))[0]


def test_two_sweeps_at_once_one_does_the_work_and_the_other_skips(env):
    due = lost_work(env)
    started = time.time() + 1.5  # both imported and waiting by then
    first, second = start_sweep(env, started), start_sweep(env, started)
    outcomes = {first.pid: result(first)[0], second.pid: result(second)[0]}
    print(f"\ntwo sweeps at once: {outcomes}")
    skipped = [pid for pid, line in outcomes.items() if "skipped" in line]
    worked = [line for line in outcomes.values() if "skipped" not in line]
    assert len(skipped) == 1 and len(worked) == 1, outcomes
    refusal = outcomes[skipped[0]]
    assert refusal["skipped"].startswith("another sweep holds the lease until 20"), refusal
    [other] = set(outcomes) - set(skipped)
    assert refusal["holder"].split(":")[1] == str(other)  # host:pid:random
    assert (worked[0]["republished"], worked[0]["dispatched"], worked[0]["requeued"]) == (
        OWNERS, OWNERS, STUCK), worked[0]
    assert "stopped" not in worked[0]
    published = video_messages(env["RABBITMQ_URL"])
    assert set(published) == due and set(published.values()) == {1}, published
    store = store_of(env)
    assert store.db[COLLECTION].count_documents({}) == 0  # given up at the end
    store.close()
    again = sweep_once(env)  # the next one starts at once and finds nothing left to do
    assert (again["republished"], again["dispatched"], again["requeued"]) == (0, 0, 0), again
    assert video_messages(env["RABBITMQ_URL"]) == Counter()


def test_the_lease_of_a_crashed_sweep_is_taken_over_once_it_expires(env):
    due = lost_work(env)
    crashed = start_sweep(env, 0, "crash")
    crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    died = time.time()
    store = store_of(env)
    [lease] = store.db[COLLECTION].find()
    assert lease["holder"].split(":")[1] == str(crashed.pid)
    blocked = sweep_once(env)  # the crashed sweep's lease has not expired yet
    assert blocked["skipped"].startswith("another sweep holds the lease until "), blocked
    assert blocked["holder"] == lease["holder"]
    assert video_messages(env["RABBITMQ_URL"]) == Counter()  # nothing was done meanwhile

    deadline = died + LEASE_SECONDS + 20
    while "skipped" in (line := result(start_sweep(env, 0))[0]):
        assert time.time() < deadline, f"the crashed sweep's lease was never taken over: {line}"
        time.sleep(0.5)
    waited = time.time() - died
    print(f"\ncrashed sweep's lease ({LEASE_SECONDS} s) taken over {waited:.1f} s after the "
          "crash")
    assert waited >= LEASE_SECONDS - 0.5
    assert (line["republished"], line["dispatched"], line["requeued"]) == (OWNERS, OWNERS, STUCK)
    published = video_messages(env["RABBITMQ_URL"])
    assert set(published) == due and set(published.values()) == {1}
    assert store.db[COLLECTION].count_documents({}) == 0
    store.close()


def test_a_sweep_longer_than_its_lease_keeps_it_renewed(env):
    due = lost_work(env)
    started = time.time() + 1.0
    slow = start_sweep(env, started, "slow", str(LEASE_SECONDS * 2.5))
    # after the lease's first expiry, while the slow sweep's step still runs
    time.sleep(max(0.0, started + LEASE_SECONDS * 1.5 - time.time()))
    assert slow.poll() is None
    late = sweep_once(env)
    assert late["skipped"].startswith("another sweep holds the lease until "), late
    line, out = result(slow)
    assert "stopped" not in line and line["republished"] == OWNERS, line
    assert "took over an expired lease" not in out
    published = video_messages(env["RABBITMQ_URL"])
    assert set(published) == due and set(published.values()) == {1}


def test_two_sweeps_overlapping_anyway_publish_every_job_once(env, monkeypatch):
    """As when a sweep stalls past its lease and the next takes it over: both run the steps
    at the same moment."""
    due = lost_work(env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = OpsConfig.from_env()
    counts: list[dict] = []
    begin = threading.Barrier(2, timeout=30)

    def one() -> None:
        store = store_of(env)
        publisher = Publisher(env["RABBITMQ_URL"], 3)
        try:
            begin.wait()
            counts.append(sweep_module.sweep(Jobs(store, config.lifecycle), publisher, config))
        finally:
            publisher.close()
            store.close()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    print(f"\ntwo sweeps overlapping: {counts}")
    assert len(counts) == 2
    assert sum(c["republished"] for c in counts) == OWNERS
    assert sum(c["requeued"] for c in counts) == STUCK
    assert sum(c["dispatched"] for c in counts) == OWNERS
    published = video_messages(env["RABBITMQ_URL"])
    assert set(published) == due and set(published.values()) == {1}, published


def test_one_holder_at_a_time_and_a_lost_lease_is_noticed(env):
    store = store_of(env)
    leases = [Lease(store.db, "sweep", LEASE_SECONDS) for _ in range(8)]
    won, refused = [], []
    begin = threading.Barrier(len(leases), timeout=30)

    def take(lease: Lease) -> None:
        begin.wait()
        try:
            lease.acquire()
            won.append(lease)
        except LeaseHeld as exc:
            refused.append(exc)

    threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(won) == 1 and len(refused) == 7
    holder = won[0]
    assert {exc.holder for exc in refused} == {holder.holder}
    holder.renew()
    holder.check()
    # It stalls past its expiry and another takes the lease over: it finds out.
    store.db[COLLECTION].update_one({"_id": "sweep"}, {"$set": {"expires_at": time.time() - 1}})
    successor = leases[1] if leases[0] is holder else leases[0]
    successor.acquire()
    with pytest.raises(LeaseLost):
        holder.renew()
    with pytest.raises(LeaseLost):
        holder.check()
    holder.release()  # gives nothing up that is no longer its own
    assert store.db[COLLECTION].find_one({"_id": "sweep"})["holder"] == successor.holder
    successor.release()
    assert store.db[COLLECTION].count_documents({}) == 0
    store.close()
