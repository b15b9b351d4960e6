"""`python -m ops sweep` when MongoDB does not answer: one line saying so, exit 1."""

import json
import os
import subprocess
import sys

from tools.processes import ROOT


def test_sweep_without_mongodb_fails_in_one_line():
    env = {**os.environ, "MONGODB_URI": "mongodb://127.0.0.1:9",
           "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:9/%2F", "AUTH_URL": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "ops", "sweep"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["failed"].startswith("ServerSelectionTimeoutError")
    assert "next sweep" in report["retry"]
