"""Several consumer loops in one process (``common.consumer.run_all``, the converter's two
lanes): each handles its own queue while the other works, SIGTERM stops them all, and a loop
that hits a channel error stops the whole process with status 1 (its supervisor restarts it)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from common.broker import Publisher
from tools.processes import Process

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# Two loops; a `slow` message holds its loop for SLOW seconds, as a long job holds its lane.
CONSUMERS = """
import json, sys, time
from common import log as jsonlog
from common.consumer import Consumer, Handler, run_all
from common.settings import ConsumerSettings, MessagingSettings

url, out, beat, *queues = sys.argv[1:]

class Record(Handler):
    def __init__(self, queue):
        self.queue = queue

    def handle(self, delivery):
        started = time.time()
        if delivery.body == b"slow":
            time.sleep(SLOW)
        with open(out, "a") as fh:
            fh.write(json.dumps({"queue": self.queue, "body": delivery.body.decode(),
                                 "started": started, "ended": time.time()}) + "\\n")

jsonlog.configure("side-by-side", "INFO")
messaging = MessagingSettings(url, 3, 1.0, 5.0)
sys.exit(run_all([Consumer(Record(queue), messaging, ConsumerSettings(10.0, beat, 60.0))
                  for queue in queues]))
""".replace("SLOW", "6")


def _start(tmp_path: Path, url: str, *queues: str) -> tuple[Process, Path]:
    out = tmp_path / "handled.jsonl"
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "PYTHONPATH")
           if key in os.environ}
    process = Process("side-by-side", [sys.executable, "-c", CONSUMERS, url, str(out),
                                       str(tmp_path / "beat"), *queues],
                      env, tmp_path / "consumers.log")
    return process.start(), out


def _handled(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def _wait(what, predicate, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_each_loop_works_while_the_other_is_busy_and_sigterm_stops_both(vhost, tmp_path):
    process, out = _start(tmp_path, vhost, "video", "video.long")
    try:
        _wait("both loops consuming", lambda: process.log_path.read_text().count(
            '"consuming"') == 2)
        publisher = Publisher(vhost, 3)
        publisher.publish("video.long", b"slow")
        time.sleep(0.5)
        publisher.publish("video", b"quick")
        publisher.close()
        _wait("the quick message", lambda: any(r["body"] == "quick" for r in _handled(out)))
        [quick] = [r for r in _handled(out) if r["body"] == "quick"]
        assert quick["queue"] == "video"
        assert not any(r["body"] == "slow" for r in _handled(out)), "slow ended first"
        os.kill(process.pid, signal.SIGTERM)  # the slow one is finished first, then both stop
        assert _wait("exit", lambda: process.returncode is not None) is not None
        assert process.returncode == 0
        [slow] = [r for r in _handled(out) if r["body"] == "slow"]
        assert slow["queue"] == "video.long" and slow["started"] < quick["started"] < slow["ended"]
    finally:
        process.stop()


def test_a_loop_that_hits_a_channel_error_stops_the_process(vhost, tmp_path):
    """A queue that does not exist: consuming it is a channel error, which retrying will not
    heal. The other loop stops too, and the process exits 1."""
    process, _out = _start(tmp_path, vhost, "video", "no.such.queue")
    try:
        _wait("exit", lambda: process.returncode is not None)
        assert process.returncode == 1
        log = process.log_path.read_text()
        assert "channel error: exiting" in log and log.count('"consumer stopped"') == 1
    finally:
        process.stop()
