"""Fair use with one converter and with three: one user's backlog does not stand in front of
another user's upload. At most USER_CONVERSIONS_AT_ONCE of an owner's jobs are in the `video`
queue; the rest wait in MongoDB and each finished job sends the owner's next one. Each converter
takes one message at a time (prefetch 1): a job never waits in the queue, or in a busy
converter, while another converter is idle."""

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.storage import call, database
from tools import devstack
from tools.media import make_noise

pytestmark = pytest.mark.e2e
BACKLOG = 10
RETENTION_SECONDS = 168 * 3600.0  # the default MP3_RETENTION_HOURS


def done_at(job: dict) -> float:
    """When the job finished: its MP3 expires exactly one retention later."""
    expires = dt.datetime.fromisoformat(job["expires_at"].replace("Z", "+00:00"))
    return expires.timestamp() - RETENTION_SECONDS


@pytest.mark.parametrize("at_once", [2, BACKLOG])
def test_one_users_backlog_does_not_starve_another_user(stack_factory, media, media_dir,
                                                        at_once):
    """With at_once=10 every job of A is queued at once, as before fair dispatch: B waits for
    the whole backlog. That run shows what the default (2) changes."""
    stack = stack_factory(USER_CONVERSIONS_AT_ONCE=str(at_once))
    assert [n for n in stack.processes if n == "converter"] == ["converter"]
    a_video = make_noise(media_dir, 120)  # about a second to convert
    _, a_jwt = stack.user()
    _, b_jwt = stack.user()

    started = time.time()
    a_ids = []
    for _ in range(BACKLOG):
        status, body = classic_upload(stack, a_jwt, a_video)
        assert status == 202, body
        a_ids.append(body["job_id"])
    b_uploaded = time.time()
    status, body = classic_upload(stack, b_jwt, media("mov"))
    assert status == 202, body
    b_accepted = time.time()  # B's job is recorded and dispatched: in the queue behind A's
    b_id = body["job_id"]

    b_job = wait_for_job(stack, b_jwt, b_id, timeout=120)
    a_jobs = [wait_for_job(stack, a_jwt, job_id, timeout=120) for job_id in a_ids]
    assert b_job["status"] == "done" and all(j["status"] == "done" for j in a_jobs)
    a_done = sorted(done_at(job) for job in a_jobs)
    b_done = done_at(b_job)
    a_before_upload = sum(t <= b_uploaded for t in a_done)
    a_before_accepted = sum(t <= b_accepted for t in a_done)
    a_before_b = sum(t < b_done for t in a_done)
    waiting_at_upload = BACKLOG - a_before_upload
    numbers = {
        "USER_CONVERSIONS_AT_ONCE": at_once,
        "A jobs done before B uploaded": a_before_upload,
        "A jobs done while B's upload was received": a_before_accepted - a_before_upload,
        "A jobs done after B's job was accepted, before it": a_before_b - a_before_accepted,
        "B's place among the 11 conversions": a_before_b + 1,
        "B waited (s)": round(b_done - b_uploaded, 2),
        "A's backlog took (s)": round(a_done[-1] - started, 2),
        "A's jobs still waiting when B's was done": BACKLOG - a_before_b,
    }
    print("\nfairness:", numbers)
    assert waiting_at_upload >= 5, f"A's backlog was nearly done before B uploaded: {numbers}"
    if at_once < BACKLOG:
        # B's job waits for at most the A jobs already in the queue when it joined it, not for
        # A's backlog. (One that finishes while B's upload is received makes room for the
        # next of A's, sent before B's: counted from B's 202, when B's is in the queue.)
        assert a_before_b - a_before_accepted <= at_once, numbers
        assert b_done < a_done[-1], numbers
    else:
        assert a_before_b == BACKLOG, numbers  # without the limit, B comes last
    account = call(stack, "GET", "/account", a_jwt).json()
    assert account["jobs"]["done"] == BACKLOG and account["usage"]["active_jobs"] == 0



CONVERTERS = 3
BACKLOG_3 = 8  # A's backlog in the three-converter case
HANDOVER = 1.0  # seconds a converter may take between one job's end and the next one's start


def log_time(line: dict) -> float:
    """The epoch seconds of a JSON log line's ``ts``."""
    return dt.datetime.strptime(line["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=dt.UTC).timestamp()


def conversions(process) -> dict[str, tuple[float, float]]:
    """job id -> (started, ended) of every job a converter process converted, from its log."""
    started, ended = {}, {}
    for text in process.log_text().splitlines():
        if not text.startswith("{"):
            continue
        line = json.loads(text)
        if line.get("msg") == "converting":
            started[line["job_id"]] = log_time(line)
        elif line.get("msg") == "converted":
            ended[line["job_id"]] = log_time(line)
    return {job: (started[job], ended[job]) for job in ended}


def idle_while_waiting(busy: dict[str, list[tuple[float, float]]],
                       waits: dict[str, tuple[float, float]]) -> list[str]:
    """Each time a converter was idle for more than HANDOVER while a job waited (from its
    publish to its start): what prefetch 1 rules out."""
    found = []
    for name, intervals in busy.items():
        spans = sorted(intervals)
        gaps = [(-float("inf"), spans[0][0]), (spans[-1][1], float("inf"))] + [
            (spans[i][1], spans[i + 1][0]) for i in range(len(spans) - 1)]
        for job, (published, started) in waits.items():
            for idle_from, idle_to in gaps:
                overlap = min(idle_to, started) - max(idle_from, published)
                if overlap > HANDOVER:
                    found.append(f"{name} idle {overlap:.2f}s while job {job} waited "
                                 f"{started - published:.2f}s")
    return found


def upload_all(stack, jwt: str, videos: list) -> list[str]:
    """Upload each video; their job ids."""
    ids = []
    for video in videos:
        status, body = classic_upload(stack, jwt, video)
        assert status == 202, body
        ids.append(body["job_id"])
    return ids


@pytest.fixture
def three_converters(stack_factory, service_dirs):
    """A stack (USER_CONVERSIONS_AT_ONCE=2) with two more converter processes, each with its
    own heartbeat file and log; (stack, {name: converter process}), all consuming."""
    extras = []

    def start():
        stack = stack_factory(USER_CONVERSIONS_AT_ONCE="2")
        converters = {"converter": stack.processes["converter"]}
        for n in range(2, CONVERTERS + 1):
            extra = devstack.consumer_process("converter", stack.env,
                                              service_dirs.new(f"converter-{n}"))
            extras.append(extra)
            converters[f"converter-{n}"] = extra
            stack.processes[f"converter-{n}"] = extra  # its log comes with a failure's report
            extra.start().wait_ready(60)
        for process in converters.values():
            deadline = time.monotonic() + 30
            while '"consuming"' not in process.log_text():
                assert time.monotonic() < deadline, process.log_tail()
                time.sleep(0.2)
        return stack, converters

    yield start
    for extra in extras:
        extra.terminate(30)


def test_three_converters_take_one_job_each_and_a_backlog_starves_no_one(
        three_converters, media, media_dir):
    """First a burst: six jobs of three users at once, the first one long. Each converter takes
    one message at a time, so the jobs behind the long one go to the converters that come
    free (a converter holding a second message would keep it behind the long job while the
    others idle). Then A's backlog of eight and B's one upload: A has 2 converters at most,
    B's job takes the third at once."""
    stack, converters = three_converters()
    short, long = make_noise(media_dir, 60), make_noise(media_dir, 600)  # ~0.5 s and ~5 s
    jwts = {name: stack.user()[1] for name in ("P", "Q", "R", "A", "B")}
    ids = {"P": upload_all(stack, jwts["P"], [long])}
    # The five short uploads go in at once: one after the other, each takes 0.2-0.7 s on a
    # loaded machine, and the last one could reach the queue as the long one ends.
    owners = ["P", "Q", "Q", "R", "R"]
    with ThreadPoolExecutor(len(owners)) as pool:
        uploads = [pool.submit(upload_all, stack, jwts[name], [short]) for name in owners]
        for name, upload in zip(owners, uploads, strict=True):
            ids.setdefault(name, []).extend(upload.result())
    burst = [job for name in ("P", "Q", "R") for job in ids[name]]
    for name in ("P", "Q", "R"):
        for job_id in ids[name]:
            assert wait_for_job(stack, jwts[name], job_id, timeout=90)["status"] == "done"
    ids["A"] = upload_all(stack, jwts["A"], [make_noise(media_dir, 120)] * BACKLOG_3)
    ids["B"] = upload_all(stack, jwts["B"], [media("mov")])
    for name in ("A", "B"):
        for job_id in ids[name]:
            assert wait_for_job(stack, jwts[name], job_id, timeout=90)["status"] == "done"

    busy = {name: conversions(process) for name, process in converters.items()}
    ran = {job: (name, *times) for name, jobs in busy.items() for job, times in jobs.items()}
    every = [job for job_ids in ids.values() for job in job_ids]
    assert sorted(ran) == sorted(every)  # each job converted once, by one converter
    with database(stack) as db:
        stored = {str(job["_id"]): job for job in db["jobs"].find()}
    waits = {job: (stored[job]["published_at"], ran[job][1]) for job in every}
    # converting from its converter's first log line until marked done (the next one of the
    # owner is sent after that, before the converter logs its "converted")
    done = {job: stored[job]["expires_at"] - RETENTION_SECONDS for job in every}
    [b_job] = ids["B"]
    b_published, b_started = waits[b_job]
    long_job = ids["P"][0]
    numbers = {
        "jobs per converter": {name: len(jobs) for name, jobs in busy.items()},
        "burst: longest wait in the queue (s)": round(max(
            waits[job][1] - waits[job][0] for job in burst), 2),
        "burst: short jobs queued after the long one ended": sum(
            waits[job][0] >= ran[long_job][2] for job in burst if job != long_job),
        "burst: jobs done while the long one converted": sum(
            ran[job][2] < ran[long_job][2] for job in burst if job != long_job),
        "A's jobs converting at once, at most": max(
            sum(ran[other][1] <= ran[job][1] < done[other] for other in ids["A"])
            for job in ids["A"]),
        "B waited in the queue (s)": round(b_started - b_published, 2),
        "A's jobs started between B's publish and B's start": sum(
            b_published < ran[job][1] < b_started for job in ids["A"]),
        "B done before A's backlog by (s)": round(
            max(ran[job][2] for job in ids["A"]) - ran[b_job][2], 2),
    }
    print("\nthree converters:", numbers)
    idle = idle_while_waiting({name: list(jobs.values()) for name, jobs in busy.items()}, waits)
    assert not idle, (idle, numbers)
    # the five short jobs of the burst were in the queue while the long one converted, and did
    # not wait for it
    assert numbers["burst: short jobs queued after the long one ended"] == 0, numbers
    assert numbers["burst: jobs done while the long one converted"] == 5, numbers
    assert all(count >= 1 for count in numbers["jobs per converter"].values()), numbers
    # A, with 2 at once, leaves a converter to B: B's job starts as it arrives
    assert numbers["A's jobs converting at once, at most"] <= 2, numbers
    assert b_started - b_published <= HANDOVER, numbers
    # and waits for at most the A jobs already queued when it joined: 2 at once, A has no more
    # (two of A's finishing together as B's arrives send their next two ahead of it)
    assert numbers["A's jobs started between B's publish and B's start"] <= 2, numbers
    assert numbers["B done before A's backlog by (s)"] > 0, numbers
