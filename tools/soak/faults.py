"""The soak's faults: a schedule drawn from the seed, played one at a time, each recorded."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tools.processes import Process

# kind -> (how long it holds in a full run, seconds; roughly what it costs on top of that)
KINDS = {
    "kill_converter": (0, 4),
    "kill_notification": (0, 4),
    "kill_gateway": (0, 5),
    "rabbitmq_node": (20, 15),  # a node stopped, started again `hold` seconds later
    "mariadb_restart": (0, 6),
    "mongodb_pause": (10, 1),  # nx-27017 SIGSTOPped, SIGCONTed `hold` seconds later
    "smtp_down": (60, 2),  # the SMTP sink stopped, started again `hold` seconds later
}
FULL_RUN_SECONDS = 600  # the run length the holds above are meant for
MIN_HOLD = {"rabbitmq_node": 5, "mongodb_pause": 3, "smtp_down": 8}
LATE_SECONDS = 60.0  # a fault planned within the run may start this long after its end
EXTRA_WEIGHTS = {"kill_converter": 4, "kill_notification": 3, "kill_gateway": 3,
                 "rabbitmq_node": 1, "mariadb_restart": 1, "mongodb_pause": 1, "smtp_down": 1}


@dataclass
class Planned:
    """A fault the schedule asks for ``at`` seconds into the load."""

    at: float
    kind: str
    hold: float


@dataclass
class Fault:
    """A fault as it happened: epoch seconds of its start and of the recovery it waited for."""

    kind: str
    target: str
    planned_at: float
    hold: float
    start: float
    end: float | None = None
    note: str = ""
    details: dict = field(default_factory=dict)


def hold_for(kind: str, seconds: float) -> float:
    """How long the fault holds in a run of ``seconds``: a full run's, shortened in proportion
    for a short run (never below MIN_HOLD)."""
    full = KINDS[kind][0]
    if not full:
        return 0.0
    return round(max(MIN_HOLD.get(kind, 1), full * min(1.0, seconds / FULL_RUN_SECONDS)), 1)


def plan(seconds: float, seed: int, every: float = 45.0) -> list[Planned]:
    """Every kind once, in an order drawn from the seed, plus one more fault of a random kind
    per ``every`` seconds of a long run; spaced evenly with jitter between a warm-up and a
    quiet end, never overlapping as planned."""
    rng = random.Random(f"faults:{seed}")
    kinds = list(KINDS)
    rng.shuffle(kinds)
    extra = max(0, int(seconds // every) - len(kinds))
    names = list(EXTRA_WEIGHTS)
    for _ in range(extra):
        kinds.insert(rng.randrange(len(kinds) + 1),
                     rng.choices(names, weights=[EXTRA_WEIGHTS[n] for n in names])[0])
    start, end = max(3.0, 0.05 * seconds), seconds - max(5.0, 0.05 * seconds)
    holds = [hold_for(kind, seconds) for kind in kinds]
    busy = sum(hold + KINDS[kind][1] for kind, hold in zip(kinds, holds, strict=True))
    gap = max(0.0, (end - start - busy) / (len(kinds) + 1))
    planned, moment = [], start
    for kind, hold in zip(kinds, holds, strict=True):
        moment += gap * rng.uniform(0.5, 1.5)
        planned.append(Planned(moment, kind, hold))
        moment += hold + KINDS[kind][1]
    # A short run cannot hold them all one after the other as estimated: the starts are
    # squeezed into the window, and each fault waits for the previous one to recover.
    last = planned[-1].at
    squeeze = min(1.0, (end - start) / (last - start)) if last > start else 1.0
    for one in planned:
        one.at = round(start + (one.at - start) * squeeze, 1)
    return planned


class Injector:
    """Plays the schedule on the calling thread, which must outlive the run: a server started
    again by a fault dies with the thread that started it (PR_SET_PDEATHSIG). Each fault starts
    at its time, or when the previous one has recovered if that is later (they never overlap),
    and is recorded with its start and end."""

    def __init__(self, rig, schedule: list[Planned], seed: int, log: Callable[[str], None]):
        self.rig = rig
        self.schedule = schedule
        self.rng = random.Random(f"targets:{seed}")
        self.log = log
        self.faults: list[Fault] = []
        self.skipped: list[Planned] = []

    def play(self, began: float, until: float) -> None:
        """Play the schedule, ``at`` counted from ``began`` (epoch seconds): every fault planned
        before ``until``, late if the ones before took longer than planned, but not more than
        LATE_SECONDS past ``until``; the caller's load goes on meanwhile."""
        for index, planned in enumerate(self.schedule):
            due = began + planned.at
            if due >= until or time.time() > until + LATE_SECONDS:
                self.skipped.extend(self.schedule[index:])
                break
            time.sleep(max(0.0, due - time.time()))
            fault = Fault(planned.kind, "", planned.at, planned.hold, time.time())
            self.faults.append(fault)
            try:
                getattr(self, f"_{planned.kind}")(fault)
            except Exception as exc:  # noqa: BLE001 - recorded; the check says what it cost
                fault.note = f"{type(exc).__name__}: {exc}"[:500]
            fault.end = time.time()
            self.log(f"fault {fault.kind} on {fault.target}: {fault.end - fault.start:.1f}s"
                     f"{' (' + fault.note + ')' if fault.note else ''}")
        self.log(f"fault schedule played: {len(self.faults)} fault(s), "
                 f"{len(self.skipped)} skipped")

    # -- the kinds ------------------------------------------------------------------------
    def _kill(self, fault: Fault, service: str) -> None:
        """kill -9 a replica's process group; over when the supervisor's new one is ready."""
        process: Process = self.rng.choice(self.rig.services.replicas(service))
        fault.target = process.name
        restarts = process.restarts
        process.kill()
        fault.details["restart_of"] = restarts
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.restarts > restarts and process.alive and (
                    process.ready is None or process.ready()):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{process.name} not back within 90 s")

    def _kill_converter(self, fault: Fault) -> None:
        self._kill(fault, "converter")

    def _kill_notification(self, fault: Fault) -> None:
        self._kill(fault, "notification")

    def _kill_gateway(self, fault: Fault) -> None:
        self._kill(fault, "gateway")

    def _rabbitmq_node(self, fault: Fault) -> None:
        node = self.rng.choice(self.rig.cluster.nodes)
        fault.target = node.nodename
        node.stop()
        fault.details["stopped_at"] = time.time()
        time.sleep(fault.hold)
        node.start()

    def _mariadb_restart(self, fault: Fault) -> None:
        fault.target = "mariadb"
        self.rig.mariadb.stop()
        self.rig.mariadb.start()

    def _mongodb_pause(self, fault: Fault) -> None:
        fault.target = "nx-27017"
        mongodb = self.rig.mongodb
        mongodb.send_signal(signal.SIGSTOP)
        try:
            time.sleep(fault.hold)
        finally:
            mongodb.send_signal(signal.SIGCONT)

    def _smtp_down(self, fault: Fault) -> None:
        fault.target = "mailsink"
        self.rig.mailsink.terminate(10)
        time.sleep(fault.hold)
        self.rig.mailsink.start().wait_ready(30)
