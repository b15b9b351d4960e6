"""The benchmark's memory measurement (9) sees the converter's ffmpeg runs and builds its large
input from the small one."""

import os
import subprocess
import threading
import time

from bench import memory
from tools.media import ffmpeg_exe


def test_children_started_by_another_thread_are_sampled():
    started, done = threading.Event(), threading.Event()

    def worker():  # as the converter's worker thread starts ffmpeg
        child = subprocess.Popen(["sleep", "5"])
        started.set()
        done.wait(10)
        child.kill()
        child.wait()

    thread = threading.Thread(target=worker)
    with memory.ChildrenSampler(os.getpid()) as sampler:
        thread.start()
        started.wait(10)
        time.sleep(0.2)
        done.set()
        thread.join()
    assert sampler.baseline == 0 and sampler.peak > 0


def test_the_large_input_repeats_the_small_one_until_it_is_big_enough(tmp_path):
    piece = tmp_path / "piece.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=1", "-c:a", "aac", str(piece)], check=True)
    big = memory.repeated(piece, 5 * piece.stat().st_size, tmp_path, ffmpeg_exe())
    assert big.stat().st_size >= 4 * piece.stat().st_size
    again = memory.repeated(piece, 5 * piece.stat().st_size, tmp_path, ffmpeg_exe())
    assert again == big and sorted(p.name for p in tmp_path.iterdir()) == [big.name, piece.name]
