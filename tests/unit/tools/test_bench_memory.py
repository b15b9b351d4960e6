"""The benchmark's memory measurement (9) sees the converter's ffmpeg runs and builds its large
input from the small one."""

import os
import subprocess
import sys

from bench import memory
from tools.media import ffmpeg_exe


def test_children_started_by_another_thread_are_sampled():
    """A process whose worker thread starts a child, as the converter's starts ffmpeg: the
    child is seen, and nothing before it is."""
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, threading\n"
        "sys.stdin.readline()\n"
        "worker = threading.Thread(target=subprocess.run, args=(['sleep', '0.5'],))\n"
        "worker.start(); worker.join()\n")], stdin=subprocess.PIPE)
    try:
        with memory.ChildrenSampler(parent.pid) as sampler:
            baseline = sampler.baseline
            parent.stdin.write(b"go\n")
            parent.stdin.close()
            parent.wait(10)
    finally:
        parent.kill()
        parent.wait()
    assert baseline == 0 and sampler.peak > 0


def test_the_large_input_repeats_the_small_one_until_it_is_big_enough(tmp_path):
    piece = tmp_path / "piece.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=1", "-c:a", "aac", str(piece)], check=True)
    big = memory.repeated(piece, 5 * piece.stat().st_size, tmp_path, ffmpeg_exe())
    assert big.stat().st_size >= 4 * piece.stat().st_size
    again = memory.repeated(piece, 5 * piece.stat().st_size, tmp_path, ffmpeg_exe())
    assert again == big and sorted(p.name for p in tmp_path.iterdir()) == [big.name, piece.name]


def test_the_exact_peak_is_reset_between_jobs():
    """After a large allocation is freed, a reset brings the kernel's peak back down: each job
    is measured from where it starts, not from what came before."""
    pid = os.getpid()
    block = bytearray(64 << 20)  # 64 MiB, touched
    block[:: 4096] = b"x" * len(block[:: 4096])
    del block
    high = memory.peak_rss(pid)
    assert memory.reset_peak(pid)
    assert memory.peak_rss(pid) < high - (32 << 20)


def test_a_peak_that_cannot_be_reset_is_said_so():
    """No such process (or no right to reset it): False, and the measurement samples."""
    assert memory.reset_peak(2**22 + 7) is False  # past the kernel's largest pid
