"""What the converter does, done by hand: GridFS transfers, raw ffmpeg, and classic moviepy."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gridfs
from bson import ObjectId

from common.options import Options
from common.store import CHUNK_SIZE, MP3S, VIDEOS, Store
from converter import ffmpeg, plan
from converter.limits import DEFAULT_LIMITS
from converter.source import LocalFile

CHUNKS_PER_QUERY = 16  # 16 MiB per reply: under every server's message size limit


def gridfs_download(store: Store, bucket: str, fid: ObjectId, path: Path) -> int:
    """Copy a GridFS file to ``path`` reading its chunks in ranges of n; returns its size."""
    chunks = store.chunks(bucket)
    length = store.files(bucket).find_one({"_id": fid})["length"]
    count = -(-length // CHUNK_SIZE)
    with open(path, "wb") as out:
        for first in range(0, count, CHUNKS_PER_QUERY):
            query = {"files_id": fid, "n": {"$gte": first, "$lt": first + CHUNKS_PER_QUERY}}
            for chunk in chunks.find(query).sort("n", 1):
                out.write(chunk["data"])
    return length


def gridfs_upload(store: Store, bucket: str, path: Path) -> ObjectId:
    """Put a file into a GridFS bucket with the services' chunk size."""
    grid = gridfs.GridFSBucket(store.db, bucket_name=bucket)
    with open(path, "rb") as src:
        return grid.upload_from_stream(path.name, src, chunk_size_bytes=CHUNK_SIZE)


def ffmpeg_command(binary: str, src: Path, dst: Path, quality: int = 2,
                   force_codec: str | None = None) -> list[str]:
    """The converter's own command line for this input (``force_codec`` overrides the probe)."""
    info = ffmpeg.FFmpeg(binary).probe(str(src))
    if force_codec is not None:
        info = ffmpeg.MediaInfo(info.duration, force_codec, info.channels)
    return ffmpeg.command(binary, str(src), str(dst), info, plan.plain(info, quality))


def release_command(binary: str, src: Path, dst: Path, quality: int = 2) -> list[str]:
    """The previous release's command line (before the conversion options): what a plain job
    is held to. Against today's plain command it lacks ``-map_chapters -1 -id3v2_version 0``."""
    info = ffmpeg.FFmpeg(binary).probe(str(src))
    cmd = [binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
           *ffmpeg.guard(LocalFile(str(src))), "-i", f"file:{src}", "-map", "0:a:0", "-vn",
           "-sn", "-dn", "-map_metadata", "-1"]
    if info.audio_codec == "mp3":
        cmd += ["-c:a", "copy"]
    else:
        cmd += [*(["-ac", "2"] if info.multichannel else []), "-c:a", "libmp3lame",
                "-q:a", str(quality)]
    cap = DEFAULT_LIMITS.media_seconds + 1
    return cmd + ["-t", f"{cap:.3f}", "-fs", str(DEFAULT_LIMITS.mp3_bytes), "-f", "mp3",
                  "-progress", "pipe:1", f"file:{dst}"]


def normalize_passes(binary: str, src: Path, work: Path) -> dict:
    """loudnorm's two passes as the converter runs them (``converter.ffmpeg``, no cover or
    chapters), each timed: measuring the loudness, then the levelled encode."""
    src = src.resolve()
    info = ffmpeg.FFmpeg(binary).probe(str(src))
    recipe = plan.make(info, Options(normalize=True, cover="none"), 2)
    dst, run = work.resolve() / "normalized.mp3", ffmpeg.FFmpeg(binary, timeout=3600)
    start = time.perf_counter()
    loudness = run.measure_loudness(str(src), info, recipe, _ignore)
    measure = time.perf_counter() - start
    start = time.perf_counter()
    run.convert(str(src), str(dst), info, recipe, _ignore, loudness=loudness)
    apply = time.perf_counter() - start
    dst.unlink()
    return {"seconds": measure + apply, "measure": measure, "apply": apply}


def cover_alone(binary: str, src: Path, work: Path) -> dict:
    """The converter's cover step on its own (``FFmpeg.extract_cover`` at the default plan's
    key frame): its wall and CPU seconds."""
    info = ffmpeg.FFmpeg(binary).probe(str(src))
    recipe = plan.plain(info)
    dst = work.resolve() / "cover.jpg"
    before, start = os.times(), time.perf_counter()
    ffmpeg.FFmpeg(binary).extract_cover(str(src.resolve()), recipe.cover_at, str(dst))
    seconds, after = time.perf_counter() - start, os.times()
    dst.unlink(missing_ok=True)
    return {"seconds": seconds, "cpu": (after.children_user - before.children_user
                                        + after.children_system - before.children_system)}


def _ignore(_percent: float) -> None:
    """A progress callback that drops the progress."""


def run_ffmpeg(cmd: list[str]) -> float:
    """Run an ffmpeg command line; seconds it took."""
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    return time.perf_counter() - start


def ffmpeg_batch(commands: list[list[str]], at_once: int) -> dict:
    """Run ffmpeg command lines ``at_once`` at a time, each worker taking the next as it
    finishes (as converters share a queue): wall seconds and the runs' CPU seconds."""
    before, start = os.times(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(at_once) as pool:
        list(pool.map(run_ffmpeg, commands))
    seconds, after = time.perf_counter() - start, os.times()
    return {"seconds": seconds, "cpu": (after.children_user - before.children_user
                                        + after.children_system - before.children_system)}


def parts(store: Store, binary: str, fid: ObjectId, work: Path,
          command: Callable[[str, Path, Path], list[str]] = ffmpeg_command) -> dict:
    """Download the video, run raw ffmpeg on it (``command``: today's plain command line, or
    ``release_command``), upload the MP3: each part timed."""
    src, dst = work / "source", work / "audio.mp3"
    start = time.perf_counter()
    gridfs_download(store, VIDEOS, fid, src)
    download = time.perf_counter() - start
    start = time.perf_counter()
    cmd = command(binary, src, dst)
    probe = time.perf_counter() - start
    encode = run_ffmpeg(cmd)
    start = time.perf_counter()
    mp3 = gridfs_upload(store, MP3S, dst)
    upload = time.perf_counter() - start
    store.delete_file(MP3S, mp3)
    src.unlink()
    dst.unlink()
    return {"seconds": download + encode + upload, "download": download, "ffmpeg": encode,
            "upload": upload, "probe": probe}


MOVIEPY = """
import sys, time
start = time.perf_counter()
from moviepy import VideoFileClip
imported = time.perf_counter()
clip = VideoFileClip(sys.argv[1])
clip.audio.write_audiofile(sys.argv[2], logger=None)
clip.close()
print(time.perf_counter() - imported, imported - start)
"""


def moviepy(src: Path, dst: Path) -> dict:
    """The classic ``VideoFileClip(path).audio.write_audiofile(out)`` in a fresh interpreter."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", MOVIEPY, str(src), str(dst)],
                         capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    convert, imports = (float(x) for x in out.stdout.split()[-2:])
    dst.unlink()
    return {"seconds": convert, "imports": imports, "process": wall}
