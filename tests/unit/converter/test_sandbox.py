"""Every ffmpeg run is spawned with nothing of the converter's environment (only glibc's arena
count), in the job's directory, under OS limits."""

import logging
import os
import resource
import signal
import subprocess
import textwrap
import threading
import time

import pytest

from common.errors import PermanentError
from converter import cover, ffmpeg, plan, sandbox
from converter.limits import MIB, Limits

LIMITS = {resource.RLIMIT_CPU: 7, resource.RLIMIT_AS: 512 * MIB, resource.RLIMIT_FSIZE: MIB}
# What the converter's own environment holds: none of it may reach a child.
CREDENTIALS = {"MONGODB_URI": "mongodb://root:hunter2@db:27017",
               "RABBITMQ_URL": "amqp://converter:hunter2@mq:5672/%2F"}


@pytest.fixture(autouse=True)
def credentials(monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def _run(cmd, tmp_path, limits=None, **kwargs):
    lines: list[str] = []
    result = sandbox.run(cmd, cwd=str(tmp_path), limits=LIMITS if limits is None else limits,
                         timeout=kwargs.pop("timeout", 60), on_line=lines.append, **kwargs)
    return result, [line.rstrip("\n") for line in lines]


def test_the_child_gets_nothing_of_the_converters_environment(tmp_path):
    assert "hunter2" in os.environ["MONGODB_URI"]
    result, lines = _run(["/usr/bin/env"], tmp_path)
    assert result.returncode == 0 and lines == ["MALLOC_ARENA_MAX=2"]


def test_the_child_runs_in_the_given_directory_with_the_limits(tmp_path):
    result, lines = _run(["/bin/sh", "-c", "pwd; cat /proc/self/limits"], tmp_path)
    assert result.returncode == 0
    assert lines[0] == str(tmp_path)
    limits = {line[:26].strip(): line[26:].split()[:2] for line in lines[2:]}
    assert limits["Max cpu time"] == ["7", "7"]
    assert limits["Max address space"] == [str(512 * MIB)] * 2
    assert limits["Max file size"] == [str(MIB)] * 2
    assert limits["Max core file size"] == ["0", "0"]


def test_a_child_past_its_cpu_limit_is_killed(tmp_path):
    result, _ = _run(["/bin/sh", "-c", "while :; do :; done"], tmp_path,
                     {resource.RLIMIT_CPU: 1}, timeout=120)
    assert result.returncode == -signal.SIGKILL and result.stopped is None
    assert result.cpu_seconds >= 0.5


def test_a_child_writing_past_its_file_limit_gets_sigxfsz(tmp_path):
    result, _ = _run(["/bin/dd", "if=/dev/zero", "of=big", "bs=1024", "count=64"], tmp_path,
                     {resource.RLIMIT_FSIZE: 4096})
    assert result.returncode == -signal.SIGXFSZ
    assert (tmp_path / "big").stat().st_size <= 4096


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def test_the_deadline_and_the_stop_event_kill_the_child(tmp_path):
    result, lines = _run(["/bin/sh", "-c", "echo $$; exec sleep 60"], tmp_path, timeout=0.5)
    assert result.stopped == "timeout" and result.returncode == -signal.SIGKILL
    assert _gone(int(lines[0]))
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    result, lines = _run(["/bin/sh", "-c", "echo $$; exec sleep 60"], tmp_path, stop=stop)
    assert result.stopped == "stop" and result.returncode == -signal.SIGKILL
    assert _gone(int(lines[0]))


def test_a_child_that_already_exited_when_the_deadline_passes_is_still_reported(tmp_path):
    """The child exits at once; the deadline is already over when it is first checked.

    Killing it then must not reap it behind the run's back: the run still returns how it ended.
    """
    for _ in range(5):
        result, lines = _run(["/bin/echo", "done"], tmp_path, timeout=0.0)
        assert result.stopped == "timeout" and lines == ["done"]
        assert result.returncode in (0, -signal.SIGKILL)


def test_the_childs_exit_is_noticed_at_once_not_at_the_next_poll(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "POLL_SECONDS", 30.0)
    started = time.monotonic()
    result, lines = _run(["/bin/sh", "-c", "echo done; sleep 0.2"], tmp_path)
    assert result.returncode == 0 and lines == ["done"]
    assert time.monotonic() - started < 10


def test_a_child_that_closed_its_stdout_is_still_stopped_and_timed_out(tmp_path):
    result, lines = _run(["/bin/sh", "-c", "echo $$; exec sleep 60 >&-"], tmp_path, timeout=0.5)
    assert result.stopped == "timeout" and result.returncode == -signal.SIGKILL
    assert _gone(int(lines[0]))
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    result, lines = _run(["/bin/sh", "-c", "echo $$; exec sleep 60 >&-"], tmp_path, stop=stop)
    assert result.stopped == "stop" and result.returncode == -signal.SIGKILL
    assert _gone(int(lines[0]))


def test_an_error_in_the_line_handler_kills_the_child(tmp_path):
    pids = []

    def fail(line):
        pids.append(int(line))
        raise RuntimeError("MongoDB went away")

    with pytest.raises(RuntimeError, match="went away"):
        sandbox.run(["/bin/sh", "-c", "echo $$; exec sleep 60"], cwd=str(tmp_path), limits={},
                    timeout=60, on_line=fail)
    assert _gone(pids[0])


# A stand-in for ffmpeg that reports, on one line, what it was given.
REPORTER = textwrap.dedent("""\
    #!/bin/sh
    limits=$(grep -E '^Max (cpu time|address space|file size)' /proc/$$/limits | tr -s ' ' |
             sed 's/ $//' | tr '\\n' ';')
    echo "env=[$(tr '\\0' ' ' < /proc/$$/environ)] cwd=$(pwd) $limits" >&2
    echo "out_time_us=$(( $(tr -d '\\0' < /proc/$$/environ | wc -c) * 1000000 + 1000000 ))"
    exit 1
    """)


@pytest.fixture
def reporter(tmp_path):
    """The stand-in, and a job directory holding a source file."""
    exe = tmp_path / "ffmpeg"
    exe.write_text(REPORTER)
    exe.chmod(0o755)
    job = tmp_path / "converter-job"
    job.mkdir()
    (job / "source").write_bytes(b"\x00" * 16)
    return str(exe), job


def _expected(job, file_bytes: int) -> list[str]:
    return ["env=[MALLOC_ARENA_MAX=2 ]", f"cwd={job}", "Max cpu time 11 11 seconds;",
            f"Max file size {file_bytes} {file_bytes} bytes;",
            f"Max address space {300 * MIB} {300 * MIB} bytes;"]


def _logged_failure(caplog) -> str:
    """ffmpeg's own last lines, which go to the log (the job's error never shows them)."""
    (record,) = [r for r in caplog.records if r.getMessage() == "ffmpeg failed"]
    caplog.clear()
    return record.detail


def test_every_ffmpeg_run_is_sandboxed(reporter, caplog):
    exe, job = reporter
    limits = Limits(cpu_seconds=11, memory_bytes=300 * MIB, mp3_bytes=2 * MIB)
    src = str(job / "source")
    run = ffmpeg.FFmpeg(exe, limits, 60, threading.Event())
    caplog.set_level(logging.WARNING, logger="converter.ffmpeg")
    with pytest.raises(PermanentError) as probed:
        run.probe(src)
    assert "MALLOC_ARENA_MAX" not in str(probed.value)
    reported = _logged_failure(caplog)
    for part in _expected(job, 0):  # inspecting writes no file
        assert part in reported
    with pytest.raises(PermanentError) as converted:
        info = ffmpeg.MediaInfo(3.0, "aac", "stereo")
        run.convert(src, str(job / "audio.mp3"), info, plan.plain(info), lambda _: None)
    assert "MALLOC_ARENA_MAX" not in str(converted.value)
    reported = _logged_failure(caplog)
    for part in _expected(job, 3 * MIB):  # the MP3 limit and a margin for -fs to act first
        assert part in reported
    # The stand-in reports 1 s plus one second per byte of its environment.
    assert run.audio_duration(src) == 1.0 + len("MALLOC_ARENA_MAX=2")


def test_the_cover_taken_alongside_is_sandboxed_the_same_way(reporter, caplog):
    exe, job = reporter
    run = ffmpeg.FFmpeg(exe, Limits(cpu_seconds=11, memory_bytes=300 * MIB, mp3_bytes=2 * MIB))
    caplog.set_level(logging.INFO, logger="converter.ffmpeg")
    with run.cover_alongside(str(job / "source"), 0.0, str(job / "cover.jpg")) as taking:
        pass
    assert taking.picture is None  # the stand-in makes none
    (record,) = [r for r in caplog.records if r.getMessage().startswith("no cover")]
    for part in _expected(job, cover.MAX_COVER_BYTES):  # at most the largest cover
        assert part in record.detail


def test_read_position_is_how_far_the_child_has_read_into_a_file(tmp_path):
    source = tmp_path / "source"
    source.write_bytes(b"\x00" * 4096)
    with open(source, "rb") as stdin:
        stdin.seek(1234)
        child = subprocess.Popen(["/bin/sleep", "30"], stdin=stdin)
    try:
        assert sandbox.read_position(child.pid, str(source)) == 1234
        assert sandbox.read_position(child.pid, str(tmp_path / "other")) is None
    finally:
        child.kill()
        child.wait()
    assert sandbox.read_position(child.pid, str(source)) is None  # gone
