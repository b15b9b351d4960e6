"""``--profile``: where a converter job's time goes, sampled with py-spy on the real process."""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.context import Bench
from common.store import VIDEOS

JOBS = 30
RATE = 250  # samples per second
# A sample belongs to the first phase whose frame name appears in its stack.
PHASES = (
    ("_send (converter/source.py", "serve the video to ffmpeg (GridFS -> loopback HTTP)"),
    ("probe (converter/ffmpeg.py", "ffmpeg probe (its own process)"),
    ("write (converter/worker.py", "progress writes to the job record"),
    ("progress (common/jobs.py", "progress writes to the job record"),
    ("audio_duration (converter/ffmpeg.py", "ffmpeg audio length check (its own process)"),
    ("convert (converter/ffmpeg.py", "ffmpeg conversion"),
    ("_store_mp3", "upload the MP3 (GridFS)"),
    ("claim (common/jobs.py", "claim the job (MongoDB)"),
    ("get (common/jobs.py", "read the job (MongoDB)"),
    ("_publish_result", "publish `mp3` + mark it published"),
    ("dispatch (common/jobs.py", "dispatch the owner's next job (MongoDB)"),
    ("finish (common/jobs.py", "mark the job done (MongoDB)"),
    ("rmtree", "remove the temp directory"),
)


def _py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def converter_phases(bench: Bench, seconds: int = 10) -> list[dict]:
    """Run ``JOBS`` jobs one after the other under py-spy; milliseconds per job per phase."""
    spy = _py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    path = bench.clip(seconds)
    fid = bench.jobs.put_video(path)
    pid = bench.converter()["converter-0"].pid
    bench.converter_job(fid, path)
    raw = bench.work / "converter.pyspy"
    recorder = subprocess.Popen(
        [spy, "record", "-p", str(pid), "--idle", "--threads", "-r", str(RATE), "--nonblocking",
         "--format", "raw", "-o", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)  # py-spy attaches
    total = sum(bench.converter_job(fid, path)["seconds"] for _ in range(JOBS))
    recorder.send_signal(signal.SIGINT)
    recorder.wait(60)
    bench.jobs.store.delete_file(VIDEOS, fid)
    counts = _phases(raw)
    busy = sum(counts.values())
    rows = [{"case": "P", "what": name, "value": n * 1000 / RATE / JOBS, "target": None,
             "ok": None, "detail": f"{100 * n / busy:.0f} % of the converter's busy samples"}
            for name, n in counts.most_common(12)]
    rows.append({"case": "P", "what": f"mean job time over {JOBS} {seconds}s jobs (bench clock)",
                 "value": total * 1000 / JOBS, "target": None, "ok": None,
                 "detail": "publish -> `mp3` message, measured by the benchmark"})
    return rows


def _phases(raw: Path) -> collections.Counter:
    """Samples of the converter's worker thread while it handles a message, by phase."""
    counts: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if "Consumer._process" not in stack:
            continue  # other threads, or the worker waiting for a message
        name = next((label for key, label in PHASES if key in stack),
                    "other: " + stack.split(";")[-1][:60])
        counts[name] += int(number)
    return counts
