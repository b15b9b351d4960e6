"""Measurement 8: what an upload, the job list, the account and a dispatch cost as jobs pile up."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import random
import time
import uuid

import requests
from bson import ObjectId
from pymongo import monitoring

from bench import media
from bench.context import Bench
from bench.driver import QueueDriver
from bench.queues import purge_video_queue
from bench.report import row
from bench.timing import interleaved, median
from common.jobs import Jobs as Lifecycle
from common.jobs import Status
from common.options import from_fields
from common.quotas import UPLOADS, Quotas
from common.settings import LifecycleSettings, MongoSettings
from common.store import Store, now
from common.usage import USAGE

LEVELS = (0, 10_000, 100_000)  # stored jobs, the measuring user's among them
OWNERS = 1000  # the measuring user and 999 others
USER_SHARE = 0.10  # of each level's jobs, the measuring user's
FLAT = 1.5  # target: an operation at a level costs at most this times the same with none stored
UPLOAD_BYTES = 1024 * 1024
BATCH = 5000  # documents per insert_many
MIN_REPS = 3  # repetitions at each level, at least; more (up to --reps x 2) while within BUDGET
BUDGET = 180.0  # seconds of repetitions at one level (--quick: a third), after MIN_REPS
WEEKS = 8  # created_at spread over this many weeks back
RETENTION = LifecycleSettings().mp3_retention_seconds  # a done job younger, an expired one older
STATUSES = ((Status.DONE, 0.25), (Status.EXPIRED, 0.65), (Status.FAILED, 0.10))
ERRORS = ("the video has no audio track", "the upload is not a video ffmpeg can read",
          "conversion failed after 3 attempts")
OPERATIONS = ("upload 1 MiB", "GET /jobs", "GET /account", "dispatch")
# nx-27017's own cost, apart from our queries: it counts the whole collection before it runs
# any aggregation (neosqlite's AggregationCursor sizes the result first), so an aggregation
# that matches nothing through an index costs what that count does
EMPTY = "nx-27017: an aggregation matching nothing"


def cost_vs_stored_work(bench: Bench) -> list[dict]:
    """8. Cost vs stored work: upload, job list, account and dispatch at 0, 10k, 100k jobs."""
    store = bench.jobs.store
    web, gateway = bench.web(), bench.gateway
    driver = QueueDriver(web.env["RABBITMQ_URL"])  # where the gateway's uploads are queued
    probe = Probe(bench, gateway, store, driver,
                  MongoSettings(web.env["MONGODB_URI"], web.env["MONGODB_DB"]))
    indexes = IndexCreator.find()
    rng = random.Random(8)
    owners = [gateway.account_id] + [uuid.uuid4().hex for _ in range(OWNERS - 1)]
    reps = bench.options.reps * 2
    budget = BUDGET / 3 if bench.options.quick else BUDGET
    times: dict[tuple[int, str], dict[str, list[dict]]] = {}
    # jobs, seconds inserting, building indexes, making the owners' usage documents
    seeding: list[tuple[int, float, float, float]] = []
    seeded: list[ObjectId] = []
    try:
        if indexes is not None:
            indexes.create(store)
        probe.warm_up()
        for level in LEVELS:
            if level > len(seeded):
                count = level - len(seeded)
                print(f"  seeding {count} jobs", flush=True)
                # inserted without the secondary indexes, which are then built at once
                if indexes is not None:
                    drop_indexes(store)
                ids, seconds = seed(store, count, owners, rng)
                start = time.perf_counter()
                if indexes is not None:
                    indexes.create(store)
                built = time.perf_counter() - start
                seeded += ids
                # inserted without their transitions: the owners' usage documents are made
                # from them as the sweep's reconciliation makes them (after a restore)
                start = time.perf_counter()
                reconcile_usage(store, owners)
                seeding.append((count, seconds, built, time.perf_counter() - start))
                print(f"    {count} jobs in {seconds:.1f}s + indexes {built:.1f}s + usage "
                      f"{seeding[-1][3]:.1f}s", flush=True)
            print(f"  {level} stored jobs, {MIN_REPS}-{reps} reps", flush=True)
            times[(level, "")] = repeat(probe.runs(), reps, budget)
            if indexes is not None:
                dropped = drop_indexes(store)
                print(f"  {level} stored jobs, indexes dropped ({dropped}), {MIN_REPS}-{reps} "
                      f"reps", flush=True)
                try:
                    times[(level, "dropped")] = repeat(probe.runs(), reps, budget)
                finally:
                    indexes.create(store)
    finally:
        probe.close()
        purge_video_queue(web.env["RABBITMQ_URL"])
        for start in range(0, len(seeded), BATCH):
            store.jobs.delete_many({"_id": {"$in": seeded[start:start + BATCH]}})
        if seeded:  # made again from what is left when next read
            store.db[USAGE].delete_many({"_id": {"$in": owners}})
    rows = [_seeding_row(seeding)]
    for variant in ("", "dropped") if indexes is not None else ("",):
        rows += level_rows(times, variant, indexes)
    return rows + nx_27017_rows(times)


def repeat(runs: dict, reps: int, budget: float) -> dict[str, list[dict]]:
    """Repetitions interleaved (``bench.timing.interleaved``): at least MIN_REPS, then more up
    to ``reps`` while the repetitions so far took less than ``budget`` seconds (a level where
    each operation takes seconds gets fewer)."""
    return interleaved(reps, runs, min_reps=MIN_REPS, budget=budget)


class Probe:
    """The four timed operations of one user, each leaving nothing behind."""

    def __init__(self, bench: Bench, gateway, store: Store, driver: QueueDriver,
                 mongo: MongoSettings):
        self.gateway, self.store, self.driver = gateway, store, driver
        self.bench = bench
        self.video = media.random_mp4(UPLOAD_BYTES, bench.options.cache_dir)
        # Dispatch runs on a client of its own, whose aggregations are counted (a listener is
        # given to the clients made after it is registered).
        self.aggregations = AggregationCounter()
        monitoring.register(self.aggregations)
        self.dispatch_store = Store(mongo, 30000)
        # the gateway's own fair-use settings (the benchmark stack sets none)
        self.lifecycle = Lifecycle(self.dispatch_store, LifecycleSettings())
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {gateway.jwt}"

    def runs(self) -> dict:
        """The operations by name, for ``interleaved``."""
        return dict(zip((*OPERATIONS, EMPTY), (self.upload, self.list_jobs, self.account,
                                               self.dispatch, self.empty_aggregation),
                        strict=True))

    def warm_up(self) -> None:
        """Each operation once: imports, connections, caches."""
        for run in self.runs().values():
            run()

    def upload(self) -> dict:
        """POST /upload of a 1 MiB file until its 202; the job and video are then removed."""
        start = time.perf_counter()
        answer = self.gateway.upload(self.video)
        seconds = time.perf_counter() - start
        self.bench.jobs.delete(answer["job_id"])
        return {"seconds": seconds}

    def _get(self, path: str) -> tuple[float, dict]:
        start = time.perf_counter()
        resp = self.session.get(f"{self.gateway.url}{path}", timeout=600)
        seconds = time.perf_counter() - start
        if resp.status_code != 200:
            raise RuntimeError(f"GET {path} answered {resp.status_code}: {resp.text[:300]}")
        return seconds, resp.json()

    def list_jobs(self) -> dict:
        """GET /jobs: the user's newest jobs."""
        seconds, body = self._get("/jobs")
        return {"seconds": seconds, "jobs": len(body["jobs"])}

    def account(self) -> dict:
        """GET /account: the user's usage, one aggregation over their jobs."""
        seconds, body = self._get("/account")
        return {"seconds": seconds, "jobs": sum(body["jobs"].values())}

    def dispatch(self) -> dict:
        """``Jobs.dispatch`` in this process for one queued job of the user's: what the
        gateway does after recording an upload and a converter after each job (count the
        owner's jobs in flight, take the oldest waiting one, publish it, mark it)."""
        doc = queued_job(self.gateway.account_id)
        self.store.jobs.insert_one(doc)
        try:
            with self.aggregations.counting():
                start = time.perf_counter()
                sent = self.lifecycle.dispatch(self.gateway.account_id, self.driver.publisher)
                seconds = time.perf_counter() - start
        finally:
            self.store.jobs.delete_one({"_id": doc["_id"]})
        if sent != 1:
            raise RuntimeError(f"dispatch sent {sent} jobs, not the one waiting")
        return {"seconds": seconds, "aggregations": self.aggregations.count}

    def empty_aggregation(self) -> dict:
        """One aggregation of `jobs` that nx-27017 answers with nothing from an index (the
        owner's waiting jobs, dispatch's own shape, of an owner who has none): its fixed cost
        per aggregation (EMPTY)."""
        nobody = {"owner": uuid.uuid4().hex, "status": Status.QUEUED.value, "dispatched_at": None}
        start = time.perf_counter()
        found = list(self.store.jobs.aggregate([{"$match": nobody}]))
        seconds = time.perf_counter() - start
        if found:
            raise RuntimeError("an aggregation for an owner with no jobs found one")
        return {"seconds": seconds}

    def close(self) -> None:
        """Close the session, the publisher and dispatch's client."""
        self.session.close()
        self.driver.close()
        self.dispatch_store.close()


class AggregationCounter(monitoring.CommandListener):
    """The aggregations sent while ``counting()``: ``count``, those of the last time."""

    def __init__(self):
        self.count, self._on = 0, False

    @contextlib.contextmanager
    def counting(self):
        self.count, self._on = 0, True
        try:
            yield self
        finally:
            self._on = False

    def started(self, event) -> None:
        if self._on and event.command_name == "aggregate":
            self.count += 1

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


def queued_job(owner: str) -> dict:
    """A job as ``Jobs.create`` records it, not yet dispatched (its video is not stored)."""
    moment = now()
    return {"_id": ObjectId(), "owner": owner, "video_fid": ObjectId(), "filename": "clip.mp4",
            "content_type": "video/mp4", "size": UPLOAD_BYTES,
            "options": from_fields({}, "clip.mp4").to_doc(), "status": Status.QUEUED.value,
            "progress": 0, "attempts": 0, "dispatched_at": None, "published_at": None,
            "created_at": moment, "updated_at": moment}


# -- stored work ------------------------------------------------------------------------------
def stored_jobs(count: int, owners: list[str], rng: random.Random,
                moment: float | None = None) -> list[dict]:
    """``count`` finished jobs shaped as ``Jobs.create`` and ``finish`` / ``fail`` / ``expire``
    leave them: ``USER_SHARE`` of them ``owners[0]``'s, the rest spread over the others; mostly
    done or expired, some failed; videos of 2-400 MB; created over the last ``WEEKS`` weeks
    (done ones within the MP3 retention, expired ones before it)."""
    moment = now() if moment is None else moment
    mine = round(count * USER_SHARE)
    statuses, weights = zip(*STATUSES, strict=True)
    docs = []
    for i in range(count):
        owner = owners[0] if i < mine else owners[rng.randrange(1, len(owners))]
        status = rng.choices(statuses, weights)[0]
        docs.append(_finished(owner, status, moment, rng))
    rng.shuffle(docs)
    return docs


def _finished(owner: str, status: Status, moment: float, rng: random.Random) -> dict:
    oldest = WEEKS * 7 * 86400
    if status == Status.DONE:
        age = rng.uniform(60, RETENTION)
    elif status == Status.EXPIRED:
        age = rng.uniform(RETENTION + 60, oldest)
    else:
        age = rng.uniform(60, oldest)
    created = round(moment - age, 3)
    size = int(rng.uniform(2, 400) * 1e6)
    seconds = size * 8 / 2.5e6  # a 2.5 Mbit/s upload
    ended = round(created + rng.uniform(2, 5) + seconds / 60, 3)
    filename = f"video-{rng.randrange(10**6)}.mp4"
    doc = {"_id": ObjectId(), "owner": owner, "video_fid": ObjectId(), "filename": filename,
           "content_type": "video/mp4", "size": size,
           "options": from_fields({}, filename).to_doc(), "status": status.value,
           "progress": 100, "attempts": 1, "dispatched_at": created, "published_at": created,
           "created_at": created, "updated_at": ended, "claim": uuid.uuid4().hex,
           "result_published_at": ended, "notified_at": round(ended + 0.5, 3),
           "notification": "sent", "video_deleted_at": ended}
    if status == Status.FAILED:
        doc.update(progress=round(rng.uniform(0, 60), 1), attempts=rng.choice((1, 1, 3)),
                   error=rng.choice(ERRORS))
        return doc
    mp3_size = int(seconds * 190e3 / 8)
    doc.update(mp3_fid=ObjectId(), mp3_size=mp3_size, duration=round(seconds, 3), error=None,
               expires_at=round(ended + RETENTION, 3), mode="encode", bitrate=190,
               cover={"width": 600, "height": 338, "size": rng.randrange(12000, 40000)},
               cover_fid=ObjectId(), chapters=0)
    if status == Status.EXPIRED:
        doc["updated_at"] = doc["expires_at"]
    return doc


def seed(store: Store, count: int, owners: list[str],
         rng: random.Random) -> tuple[list[ObjectId], float]:
    """Insert ``count`` stored jobs (``stored_jobs``) with insert_many; their ids and the
    seconds the inserts took (making the documents not counted)."""
    docs = stored_jobs(count, owners, rng)
    start = time.perf_counter()
    for first in range(0, len(docs), BATCH):
        store.jobs.insert_many(docs[first:first + BATCH], ordered=False)
    return [d["_id"] for d in docs], time.perf_counter() - start


# -- indexes ----------------------------------------------------------------------------------
class IndexCreator:
    """The services' index creation (``common.indexes``), when the services have one."""

    NAMES = ("ensure", "ensure_indexes", "create", "create_indexes", "create_all")

    def __init__(self, name: str, fn):
        self.name, self._fn = name, fn
        first = next(iter(inspect.signature(fn).parameters), "")
        self._wants_db = first in ("db", "database")

    @classmethod
    def find(cls) -> IndexCreator | None:
        """The function of ``common.indexes`` that creates the indexes; None without one."""
        try:
            module = importlib.import_module("common.indexes")
        except ModuleNotFoundError:
            return None
        public = [n for n, f in inspect.getmembers(module, inspect.isfunction)
                  if f.__module__ == module.__name__ and not n.startswith("_")]
        name = next((n for n in cls.NAMES if n in public), None) or next(
            (n for n in public if n.startswith(("ensure", "create"))), None)
        if name is None:
            raise RuntimeError(f"common.indexes has no function that creates indexes: {public}")
        return cls(f"common.indexes.{name}", getattr(module, name))

    def create(self, store: Store) -> None:
        """Create the indexes (as the services do at start)."""
        self._fn(store.db if self._wants_db else store)


def drop_indexes(store: Store) -> str:
    """Drop every index but ``_id``'s of `jobs` and `uploads`; which ones went."""
    dropped = []
    for name in ("jobs", UPLOADS):
        collection = store.db[name]
        for index in list(collection.list_indexes()):
            if index["name"] != "_id_":
                collection.drop_index(index["name"])
                dropped.append(f"{name}.{index['name']}")
    return ", ".join(dropped) or "none there"


# -- rows -------------------------------------------------------------------------------------
def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def nx_27017_rows(times: dict) -> list[dict]:
    """Which part of dispatch's growth is nx-27017's (with the indexes): an aggregation matching
    nothing at each level over none stored (EMPTY), and dispatch's cost less, for each of the
    aggregations it ran, what that empty one grew by. Reported, not judged: MongoDB has no
    such count, and what is left is our queries' own growth."""
    empty = {level: median(times[(level, "")][EMPTY]) for level in LEVELS}
    dispatch = {level: median(times[(level, "")]["dispatch"]) for level in LEVELS}
    rows = []
    for level in LEVELS[1:]:
        grown = empty[level] - empty[0]
        runs = median(times[(level, "")]["dispatch"], "aggregations")
        rest = dispatch[level] - runs * grown
        rows.append(row("8", f"{EMPTY}: {level:,} stored jobs / none", empty[level] / empty[0],
                        None, None, f"{empty[0] * 1000:.1f} ms -> {empty[level] * 1000:.1f} "
                        "ms: nx-27017 counts the whole collection before each aggregation"))
        rows.append(row("8", f"dispatch less that count before each of its aggregations: "
                        f"{level:,} stored jobs / none", rest / dispatch[0], None, None,
                        f"{dispatch[level] * 1000:.1f} ms - {runs:g} aggregations x "
                        f"{grown * 1000:.1f} ms = {rest * 1000:.1f} ms, against "
                        f"{dispatch[0] * 1000:.1f} ms with none stored"))
    return rows


def reconcile_usage(store: Store, owners: list[str]) -> None:
    """Each owner's usage document made from their jobs (``Quotas.reconcile``, the sweep's,
    with nothing else writing meanwhile: no settling)."""
    quotas = Quotas(store)
    for owner in owners:
        quotas.reconcile(owner, settle=0)


def _seeding_row(seeding: list[tuple[int, float, float, float]]) -> dict:
    total, seconds = sum(n for n, *_ in seeding), sum(s for _, s, *_ in seeding)
    built = sum(b for _, _, b, _ in seeding)
    usage = sum(u for *_, u in seeding)
    steps = " + ".join(f"{n:,} in {s:.1f}s" for n, s, *_ in seeding)
    detail = f"{steps}; {total / seconds:,.0f} jobs/s" if seconds else steps
    return row("8", f"seeding {total:,} stored jobs (insert_many, {BATCH:,} a batch)", seconds,
               None, None, f"{detail}; then building the indexes {built:.1f}s, then the "
               f"{len(seeding)} x {OWNERS:,} owners' usage documents (Quotas.reconcile) "
               f"{usage:.1f}s", unit=" s")


def level_rows(times: dict, variant: str, indexes: IndexCreator | None) -> list[dict]:
    """Per operation: its cost at each level over its cost with no job stored (``FLAT``); GET
    /jobs's at 100,000 over its cost at 10,000 (a full page both)."""
    label = {"": "", "dropped": ", indexes dropped"}[variant]
    if variant == "" and indexes is not None:
        label = f", indexes of {indexes.name}"
    rows = []
    for op in OPERATIONS:
        cost = {level: median(times[(level, variant)][op]) for level in LEVELS}
        at = ", ".join(f"{level:,}: {_ms(cost[level])}" for level in LEVELS)
        for level in LEVELS[1:]:
            # GET /jobs answers a page: none at 0 stored jobs, a full one (200) from 10,000 on;
            # its growth with stored work is measured between full pages, and what a full page
            # costs over an empty one is reported
            base = LEVELS[1] if op == "GET /jobs" and level != LEVELS[1] else LEVELS[0]
            judged = not (op == "GET /jobs" and base == LEVELS[0])
            ratio = cost[level] / cost[base]
            reps = "/".join(str(len(times[(n, variant)][op])) for n in LEVELS)
            detail = (f"medians of {reps} reps, stored jobs -> time: {at}; the user's "
                      f"{round(level * USER_SHARE):,} of {level:,} across {OWNERS:,} owners")
            if op == "GET /jobs":
                detail += f"; {times[(level, variant)][op][-1]['jobs']} jobs answered"
            if op == "dispatch":
                detail += "; Jobs.dispatch in the benchmark's process, same MongoDB"
            against = f"{base:,}" if base else "none"
            rows.append(row("8", f"{op}: {level:,} stored jobs / {against}{label}", ratio,
                            f"<= {FLAT:g}x" if judged else None,
                            (ratio <= FLAT) if judged else None, detail))
    return rows
