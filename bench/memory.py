"""Measurement 9: the converter's memory does not grow with the size of the video."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.context import Bench
from bench.report import row
from bench.timing import RssSampler, interleaved, median, rss_bytes
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
    fids = {"small": bench.jobs.put_video(small), "big": bench.jobs.put_video(big)}
    paths = {"small": small, "big": big}

    def job(name: str):
        def measured() -> dict:
            exact = reset_peak(converter)
            with RssSampler([converter]) as own, ChildrenSampler(converter) as ffmpeg:
                seconds = bench.converter_job(fids[name], paths[name])["seconds"]
            peak = peak_rss(converter) if exact else own.peak
            return {"seconds": seconds, "rss_mib": peak / MIB,
                    "growth_mib": (peak - own.baseline) / MIB, "ffmpeg_mib": ffmpeg.peak / MIB}
        return measured

    try:
        # Both sizes once first: a process's resident memory settles over its first jobs
        # (the allocator keeps what it freed), whatever their size.
        for name in fids:
            bench.converter_job(fids[name], paths[name])
        runs = interleaved(bench.options.long_reps, {name: job(name) for name in fids})
    finally:
        for fid in fids.values():
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


def reset_peak(pid: int) -> bool:
    """Set the kernel's peak resident size of ``pid`` (VmHWM) to its current one; False where
    that is not allowed (the peak is then sampled, and a long job has more samples to peak in)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss(pid: int) -> int:
    """VmHWM of a process: its largest resident size since it started or ``reset_peak``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


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
