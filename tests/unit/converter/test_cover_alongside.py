"""The cover picture taken while the conversion runs: the same frame as taken alone, and
nothing of it left running, nor kept, when the conversion fails or the job is abandoned."""

import logging
import os
import textwrap
import threading
import time

import pytest

from common.errors import RetryableError
from common.log import bound_job, job_id_var
from converter import ffmpeg, plan
from tools.media import ffmpeg_exe

FFMPEG = ffmpeg_exe()
# A stand-in for ffmpeg that notes its pid in the job's directory, then takes a minute.
SLOW = textwrap.dedent("""\
    #!/bin/sh
    echo $$ >> pids
    exec sleep 60
    """)


def _covers_running() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "cover"]


def test_the_cover_taken_alongside_is_the_frame_taken_alone(media, tmp_path):
    src = str(media("mov"))
    run = ffmpeg.FFmpeg(FFMPEG, timeout=60.0)
    info = run.probe(src)
    recipe = plan.plain(info)
    assert recipe.cover_at > 0
    alone = run.extract_cover(src, recipe.cover_at, str(tmp_path / "alone.jpg"))
    dst = tmp_path / "out.mp3"
    with run.cover_alongside(src, recipe.cover_at, str(tmp_path / "cover.jpg")) as taking:
        duration = run.convert(src, str(dst), info, recipe, lambda _: None)
    assert alone is not None and taking.picture == alone
    assert duration == pytest.approx(info.duration, abs=0.2) and dst.stat().st_size > 0
    assert _covers_running() == []


def test_no_cover_asked_is_no_thread(tmp_path):
    with ffmpeg.FFmpeg(FFMPEG).cover_alongside("source", None, "cover.jpg") as taking:
        assert _covers_running() == []
    assert taking.picture is None


@pytest.fixture
def slow(tmp_path):
    """The slow stand-in, and a job directory holding a source file."""
    exe = tmp_path / "ffmpeg"
    exe.write_text(SLOW)
    exe.chmod(0o755)
    job = tmp_path / "converter-job"
    job.mkdir()
    (job / "source").write_bytes(b"\x00" * 16)
    return str(exe), job


def _started(job) -> list[int]:
    """The pids of the stand-in's runs, once the first has started."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = (job / "pids").read_text() if (job / "pids").exists() else ""
        if text.endswith("\n"):
            return [int(line) for line in text.split()]
        time.sleep(0.02)
    raise AssertionError("the cover's ffmpeg never started")


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def test_a_failed_conversion_stops_the_cover_and_discards_it(slow):
    exe, job = slow
    run = ffmpeg.FFmpeg(exe, abandon=threading.Event())
    with pytest.raises(RuntimeError, match="the conversion failed"):
        with run.cover_alongside(str(job / "source"), 1.0, str(job / "cover.jpg")) as taking:
            (pid,) = _started(job)
            raise RuntimeError("the conversion failed")
    assert _gone(pid) and _covers_running() == []  # stopped and waited for
    assert taking.picture is None and not (job / "cover.jpg").exists()
    assert (job / "pids").read_text().split() == [str(pid)]  # not tried again at 0 s
    assert not run.abandon.is_set()  # the job itself goes on (to fail, or be retried)


def test_an_abandoned_job_stops_the_cover_too(slow):
    exe, job = slow
    run = ffmpeg.FFmpeg(exe, abandon=threading.Event())
    with pytest.raises(RetryableError, match="conversion interrupted"):
        with run.cover_alongside(str(job / "source"), 1.0, str(job / "cover.jpg")):
            (pid,) = _started(job)
            run.abandon.set()  # the conversion's own run stops on it the same way
    assert _gone(pid) and _covers_running() == []


def test_the_covers_log_lines_carry_the_job(tmp_path, caplog):
    """A file without a picture: "no cover" is logged from the cover's thread."""
    src = tmp_path / "source"
    src.write_bytes(b"not media")
    seen = []

    class Recorder(logging.Handler):
        def emit(self, record):
            seen.append((record.getMessage(), job_id_var.get()))

    recorder = Recorder()
    logging.getLogger("converter.ffmpeg").addHandler(recorder)
    caplog.set_level(logging.INFO, logger="converter.ffmpeg")
    try:
        with bound_job("job-1"):
            with ffmpeg.FFmpeg(FFMPEG).cover_alongside(str(src), 1.0,
                                                       str(tmp_path / "cover.jpg")) as taking:
                pass
    finally:
        logging.getLogger("converter.ffmpeg").removeHandler(recorder)
    assert taking.picture is None
    assert ("no cover: no frame of the video could be taken", "job-1") in seen
