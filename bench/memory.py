"""Measurement 9: the converter's memory does not grow with the size of the video."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.context import Bench
from bench.report import row
from bench.timing import RssSampler, median, rss_bytes
from common.store import VIDEOS

MIB = 1024 * 1024
BIG_BYTES = 1 << 30  # the large input: at least 1 GiB of 720p video
SMALL_SECONDS = 60  # the small input, and the piece the large one repeats
RSS_TARGET = 1.1  # the converter's peak RSS on the large input over its peak on the small one


def converter_memory(bench: Bench) -> list[dict]:
    """9. Converter peak RSS, a 1 GiB video over a 60 s clip."""
    small = bench.clip(SMALL_SECONDS)
    big = repeated(small, BIG_BYTES, bench.options.cache_dir, bench.ffmpeg)
    converter = next(iter(bench.converter().processes.values())).pid
    runs: dict[str, list[dict]] = {"small": [], "big": []}
    for name, path in (("small", small), ("big", big)):
        fid = bench.jobs.put_video(path)
        try:
            bench.converter_job(fid, path)  # warm-up: the converter's buffers at their size
            for _ in range(bench.options.long_reps):
                print(f"  {name}: {path.stat().st_size / MIB:.0f} MiB", flush=True)
                with RssSampler([converter]) as own, ChildrenSampler(converter) as ffmpeg:
                    seconds = bench.converter_job(fid, path)["seconds"]
                runs[name].append({"seconds": seconds, "rss_mib": own.peak / MIB,
                                   "growth_mib": own.growth / MIB,
                                   "ffmpeg_mib": ffmpeg.peak / MIB})
        finally:
            bench.jobs.store.delete_file(VIDEOS, fid)
    small_peak, big_peak = median(runs["small"], "rss_mib"), median(runs["big"], "rss_mib")
    detail = (f"converter process peak VmRSS {small_peak:.1f} MiB for "
              f"{small.stat().st_size / MIB:.0f} MiB ({SMALL_SECONDS}s), {big_peak:.1f} MiB for "
              f"{big.stat().st_size / MIB:.0f} MiB ({median(runs['big']):.1f}s job); growth "
              f"during the job {median(runs['small'], 'growth_mib'):.1f} / "
              f"{median(runs['big'], 'growth_mib'):.1f} MiB; its ffmpeg runs peaked at "
              f"{median(runs['small'], 'ffmpeg_mib'):.0f} / "
              f"{median(runs['big'], 'ffmpeg_mib'):.0f} MiB (not counted)")
    ratio = big_peak / small_peak
    return [row("9", "converter peak RSS, 1 GiB video / 60 s clip", ratio, f"<= {RSS_TARGET}x",
                ratio <= RSS_TARGET, detail, unit="x")]


def repeated(piece: Path, at_least: int, cache_dir: Path, ffmpeg: str) -> Path:
    """``piece`` played again and again (stream copy, ffmpeg's concat demuxer) until the file
    holds ``at_least`` bytes; cached."""
    times = -(-at_least // piece.stat().st_size)
    path = cache_dir / f"{piece.stem}-x{times}{piece.suffix}"
    if path.exists():
        return path
    listing = cache_dir / f".{path.stem}.txt"
    listing.write_text(f"file '{piece.resolve()}'\n" * times)
    tmp = cache_dir / f".tmp-{path.name}"
    print(f"making {path.name} ({times} x {piece.name}) ...", flush=True)
    subprocess.run([ffmpeg, "-y", "-hide_banner", "-loglevel", "error", "-f", "concat",
                    "-safe", "0", "-i", str(listing), "-c", "copy", str(tmp)],
                   check=True, timeout=1800)
    listing.unlink()
    tmp.replace(path)
    return path


class ChildrenSampler(RssSampler):
    """The summed VmRSS of a process's children (the converter's ffmpeg runs), sampled."""

    def __init__(self, parent: int, interval: float = 0.05):
        self.parent = parent
        super().__init__([], interval)

    def _total(self) -> int:
        children: list[str] = []
        try:  # each thread's own children: ffmpeg is started by the worker thread
            for task in Path(f"/proc/{self.parent}/task").iterdir():
                children += (task / "children").read_text().split()
        except OSError:
            return 0
        return sum(rss_bytes(int(pid)) for pid in children)
