"""The consumer liveness probe: `python -m common.heartbeat check` exit codes."""

import os
import subprocess
import sys
import time

from common import heartbeat


def _check(path, max_age="60", *args):
    env = {**os.environ, "HEARTBEAT_FILE": str(path), "HEARTBEAT_MAX_AGE_SECONDS": max_age}
    return subprocess.run([sys.executable, "-m", "common.heartbeat", *args], env=env,
                          capture_output=True, text=True, timeout=30)


def test_fresh_heartbeat_passes(tmp_path):
    path = tmp_path / "converter.heartbeat"
    heartbeat.touch(str(path))
    result = _check(path, "60", "check", "converter")
    assert result.returncode == 0, result.stderr


def test_stale_heartbeat_fails_with_its_age(tmp_path):
    path = tmp_path / "converter.heartbeat"
    heartbeat.touch(str(path))
    old = time.time() - 120
    os.utime(path, (old, old))
    result = _check(path, "60", "check")
    assert result.returncode == 1
    assert "stale heartbeat" in result.stderr and str(path) in result.stderr


def test_missing_heartbeat_fails(tmp_path):
    assert _check(tmp_path / "never-written", "60", "check").returncode == 1


def test_touch_refreshes_an_old_file(tmp_path):
    path = tmp_path / "hb"
    path.write_text("")
    os.utime(path, (0, 0))
    heartbeat.touch(str(path))
    assert heartbeat.age(str(path)) < 5


def test_usage_error_exits_2(tmp_path):
    result = _check(tmp_path / "hb", "60")
    assert result.returncode == 2 and "usage" in result.stderr


def test_bad_max_age_is_a_configuration_error(tmp_path):
    heartbeat.touch(str(tmp_path / "hb"))
    result = _check(tmp_path / "hb", "a minute", "check")
    assert result.returncode != 0
    assert "HEARTBEAT_MAX_AGE_SECONDS" in result.stderr
