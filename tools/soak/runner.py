"""One soak run from start to report: servers up, users made, load and faults together, the
drain, the final sweep, the check; everything stopped at the end, whatever happened."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pika
import pymongo
from bson import ObjectId

from common import topology
from tools.processes import ROOT
from tools.soak import faults, report
from tools.soak.check import FINAL, Checker
from tools.soak.clips import make_clips
from tools.soak.load import Load, Upload, make_user
from tools.soak.rig import Rig

SCALE = {"gateway": 2, "converter": 3, "notification": 2}
ATTEMPTS, RETRY_BASE, RETRY_MAX = 10, 2, 20  # retries outlast a minute without SMTP: >= 65 s
# The services as an operator would run them, but for retries long enough to ride out the
# faults, limits users can reach in a few minutes, and the sweep's CronJob every SWEEP_EVERY.
ENV = {
    "MAX_DELIVERY_ATTEMPTS": str(ATTEMPTS),
    "RETRY_BASE_SECONDS": str(RETRY_BASE),
    "RETRY_MAX_SECONDS": str(RETRY_MAX),
    "REGISTER_RATE_LIMIT_PER_ADDRESS": "1000 per hour",  # every user comes from 127.0.0.1
    "LOGIN_RATE_LIMIT_PER_ADDRESS": "1000 per minute",
    "UPLOAD_RATE_LIMIT_PER_USER": "60 per hour",
    "USER_MAX_ACTIVE_JOBS": "6",
    "USER_STORAGE_QUOTA_BYTES": str(2 * 1024 * 1024),
    "UNPUBLISHED_JOB_SECONDS": "20",
    "STUCK_JOB_SECONDS": "60",
    "ORPHAN_GRACE_SECONDS": "300",
}
SWEEP_EVERY = 30.0
DATA_DIRS = ("mariadb", "rabbitmq", "mongodb", "run", "media")
SMTP_TIMEOUT = 10.0  # SMTP_TIMEOUT_SECONDS: how long an email may be in flight


@dataclass
class Settings:
    """What one run does."""

    seconds: float = 600
    seed: int = 1
    users: int = 20
    pause: tuple[float, float] = (10.0, 40.0)  # seconds between one user's uploads
    delete_share: float = 0.1  # accepted uploads their user deletes if still running
    directory: Path | None = None  # default var/soak/<time>-seed<seed>
    drain_seconds: float | None = None  # default max(120, seconds / 2)
    extra_env: dict = field(default_factory=dict)
    keep: bool = False  # keep the servers' data and the clips after a run that passed


class Log:
    """Lines with the seconds since the start, to stdout and the run's soak.log."""

    def __init__(self, path: Path, echo: bool = True):
        self.path, self.echo, self.began = path, echo, time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        text = f"[{time.monotonic() - self.began:7.1f}s] {line}"
        with self._lock:
            with open(self.path, "a") as out:
                out.write(text + "\n")
            if self.echo:
                print(text, flush=True)


class Sweeper:
    """`python -m ops sweep` every SWEEP_EVERY seconds on a thread, as the CronJob runs it."""

    def __init__(self, rig: Rig, log: Log):
        self.rig, self.log, self.results = rig, log, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(150)

    def _loop(self) -> None:
        while not self._stop.wait(SWEEP_EVERY):
            result = self.rig.sweep()
            self.results.append(result)
            if result.get("error"):
                self.log(f"sweep: {result['error']}")


def _pending(uploads: list[Upload], db) -> list[str]:
    """What is not finished yet: accepted jobs (and jobs of unanswered uploads) that are not
    final with their email decided."""
    waiting = []
    for upload in uploads:
        if upload.delete and upload.delete.get("status") == 204:
            continue
        if upload.accepted:
            job = db["jobs"].find_one({"_id": ObjectId(upload.job_id)})
        elif upload.status is None:
            job = db["jobs"].find_one({"owner": upload.owner, "filename": upload.filename})
        else:
            continue
        if job is not None and (job.get("status") not in FINAL or not job.get("notification")):
            waiting.append(f"{upload.filename}: {job.get('status')}")
    return waiting


def _messages_waiting(url: str, max_attempts: int) -> int | None:
    """Messages ready in the work and retry queues (not the dead-letter queues); None when
    no node answers."""
    names = [q for queue in topology.WORK_QUEUES
             for q in (queue, *(topology.retry_queue(queue, n) for n in range(1, max_attempts)))]
    for one in url.split(","):
        try:
            connection = pika.BlockingConnection(pika.URLParameters(one))
        except pika.exceptions.AMQPError:
            continue
        try:
            channel = connection.channel()
            return sum(channel.queue_declare(q, passive=True).method.message_count
                       for q in names)
        except pika.exceptions.AMQPError:
            continue
        finally:
            if connection.is_open:
                connection.close()
    return None


def _settled_queues(rig: Rig, tries: int = 5) -> list[dict] | str:
    """`rabbitmqctl list_queues` until no work or delay queue holds a message (or ``tries``
    runs): its counts are statistics the nodes emit every 5 s, so a message consumed a moment
    ago may still be counted."""
    for attempt in range(tries):
        queues = rig.queues()
        if isinstance(queues, str) or not any(
                q["ready"] + q["unacked"] for q in queues if not q["name"].endswith(".dlq")):
            return queues
        if attempt + 1 < tries:
            time.sleep(6)
    return queues


def _drain(load: Load, rig: Rig, db, seconds: float, log: Log) -> dict:
    """Wait until every accepted upload is final and told, and the queues are empty."""
    started = time.monotonic()
    deadline = started + seconds
    pending, waiting = ["?"], None
    while time.monotonic() < deadline:
        try:
            pending = _pending(load.uploads, db)
            waiting = _messages_waiting(rig.env["RABBITMQ_URL"], ATTEMPTS)
        except pymongo.errors.PyMongoError as exc:
            log(f"drain: {exc!r}")
        if not pending and waiting == 0:
            break
        time.sleep(2)
    took = round(time.monotonic() - started, 1)
    log(f"drain: {len(pending)} job(s) unfinished, {waiting} message(s) queued after {took}s")
    return {"seconds": took, "unfinished": pending[:20], "messages_waiting": waiting}


def run(settings: Settings, echo: bool = True) -> dict:
    """A whole run; the report (also written to <run dir>/report.json)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    directory = settings.directory or ROOT / "var" / "soak" / f"{stamp}-seed{settings.seed}"
    directory.mkdir(parents=True, exist_ok=True)
    log = Log(directory / "soak.log", echo)
    log(f"soak: {settings.seconds} s, seed {settings.seed}, {settings.users} users, "
        f"in {directory}")
    rig = Rig(directory, SCALE, {**ENV, **settings.extra_env}, log)
    result = None
    try:
        result = _run(settings, rig, directory, log)
        return result
    finally:
        log("stopping everything")
        rig.close()
        log("stopped")
        if result is not None and report.passed(result) and not settings.keep:
            for name in DATA_DIRS:  # the logs, the mail and the reports stay
                shutil.rmtree(directory / name, ignore_errors=True)


def _run(settings: Settings, rig: Rig, directory: Path, log: Log) -> dict:
    rig.start()
    timings = dict(rig.timings)
    mark = time.monotonic()
    clips = make_clips(directory / "media", settings.seed)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:  # auth hashes two at a time
        users = list(pool.map(
            lambda i: make_user(rig.gateways[i % len(rig.gateways)], rig.mail_dir, i,
                                settings.seed), range(settings.users)))
    timings["clips and users"] = round(time.monotonic() - mark, 1)
    log(f"{len(clips)} clips, {len(users)} users ready")
    load = Load(users, rig.gateways, clips, settings.pause, settings.delete_share)
    injector = faults.Injector(rig, faults.plan(settings.seconds, settings.seed),
                               settings.seed, log)
    sweeper = Sweeper(rig, log)
    client = pymongo.MongoClient(rig.env["MONGODB_URI"], serverSelectionTimeoutMS=5000,
                                 socketTimeoutMS=30000)
    try:
        began = time.time()
        load.start()
        sweeper.start()
        # On this thread: it outlives every server a fault starts again.
        injector.play(began, began + settings.seconds)
        time.sleep(max(0.0, began + settings.seconds - time.time()))
        load.stop()
        timings["load"] = round(time.time() - began, 1)
        log(f"load stopped: {len(load.uploads)} uploads")
        db = client[rig.env["MONGODB_DB"]]
        drain = _drain(load, rig, db, settings.drain_seconds or max(120.0, settings.seconds / 2),
                       log)
        timings["drain"] = drain["seconds"]
        sweeper.stop()
        mark = time.monotonic()
        final_sweep = rig.sweep(ORPHAN_GRACE_SECONDS="0")
        dead = {queue: rig.dead_letters(queue) for queue in topology.WORK_QUEUES}
        queues = _settled_queues(rig)
        verdict = Checker(load.uploads, db, rig.mail_dir, SMTP_TIMEOUT + 5).run(dead, queues)
        timings["check"] = round(time.monotonic() - mark, 1)
        result = report.build(
            seed=settings.seed, seconds=settings.seconds, uploads=load.uploads, verdict=verdict,
            faults=injector.faults, skipped=injector.skipped, timings=timings,
            restarts=rig.restarts(), queues=queues,
            sweeps=sweeper.results, final_sweep=final_sweep, users=len(users), began=began)
        result["drain"] = drain
        result["directory"] = str(directory)
        report.write(result, directory / "report.json")
        _write_uploads(load.uploads, directory / "uploads.json")
        log("\n" + report.text(result))
        return result
    finally:
        load.stop(5)
        sweeper.stop()
        client.close()


def _write_uploads(uploads: list[Upload], path: Path) -> None:
    """Every upload as the users saw it, for reading a finding's story."""
    path.write_text(json.dumps([asdict(u) for u in uploads], indent=1, default=str))
