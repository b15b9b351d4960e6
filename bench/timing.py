"""Interleaved repetitions, medians, and a sampler of processes' resident memory."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path


def interleaved(reps: int, runs: dict[str, Callable[[], dict]], min_reps: int | None = None,
                budget: float | None = None) -> dict[str, list[dict]]:
    """Run every named callable once per repetition, rotating the order each time; with a
    ``budget`` (seconds), stop after ``min_reps`` once the repetitions so far took longer.

    Each callable returns a dict of measured values (seconds, bytes...); one list per name.
    """
    names = list(runs)
    results: dict[str, list[dict]] = {name: [] for name in names}
    start = time.monotonic()
    for rep in range(reps):
        if budget is not None and rep >= (min_reps or 1) and time.monotonic() - start > budget:
            break
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            values = runs[name]()
            results[name].append(values)
            shown = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in values.items())
            print(f"    rep {rep + 1}/{reps} {name}: {shown}", flush=True)
    return results


def median(samples: Iterable[dict], key: str = "seconds") -> float:
    """Median of one measured value over the repetitions."""
    return statistics.median(s[key] for s in samples)


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def children(pid: int) -> list[int]:
    """Direct children of a process (gunicorn's workers, for its master's pid)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def rss_bytes(pid: int) -> int:
    """VmRSS of a process, 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples the summed VmRSS of some pids every ``interval`` seconds, in a thread."""

    def __init__(self, pids: list[int], interval: float = 0.05):
        self.pids = pids
        self.interval = interval
        self.baseline = self._total()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        return sum(rss_bytes(pid) for pid in self.pids)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._total())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._total())

    @property
    def growth(self) -> int:
        """Peak minus the value before the measured work started."""
        return self.peak - self.baseline


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process plus its waited-for children (ffmpeg runs), 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / TICKS  # utime stime cutime cstime


def listening_pid(port: int, candidates: list[int]) -> int | None:
    """The pid among ``candidates`` holding the listening TCP socket of ``port`` (e.g. the
    RabbitMQ node the benchmark uses, among every beam.smp on the machine); None if none."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                sockets.add(f"socket:[{fields[9]}]")
    for pid in candidates:
        try:
            if any(os.readlink(fd) in sockets for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return pid
        except OSError:
            continue
    return None


def machine_cpu_seconds() -> float:
    """CPU seconds every process on the machine spent so far, all cores together
    (/proc/stat: user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7)) / TICKS


def pids_named(comm: str) -> list[int]:
    """Pids whose command name is ``comm`` (e.g. the RabbitMQ VM, beam.smp)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() == comm:
                found.append(int(stat.parent.name))
        except OSError:
            pass
    return found
