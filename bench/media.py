"""Benchmark inputs: 1280x720 H.264 clips made with the imageio-ffmpeg ffmpeg, cached."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tools.media import ffmpeg_exe

# Two different tones with a little noise: stereo that joint-stereo cannot fold away.
_AUDIO = ("aevalsrc=0.3*sin(440*2*PI*t)+0.05*(random(0)-0.5)"
          "|0.3*sin(660*2*PI*t)+0.05*(random(1)-0.5):s=48000:d={seconds}")
_VIDEO = "testsrc=size=1280x720:rate=25:duration={seconds}"
# A test pattern compresses to almost nothing: constant-bitrate filler brings the file to the
# size of a real 720p upload (2.5 Mbit/s), so transfers weigh what they weigh in production.
_H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-b:v", "2500k", "-minrate", "2500k", "-maxrate", "2500k", "-bufsize", "5000k",
         "-x264-params", "nal-hrd=cbr"]
AUDIO_CODECS = {"mp4": ["-c:a", "aac", "-b:a", "160k"],
                "mkv": ["-c:a", "libmp3lame", "-b:a", "192k"]}
MP4_HEADER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp41mp42"  # a 24-byte ftyp box


def clip(seconds: int, container: str, cache_dir: Path) -> Path:
    """A ``seconds`` long 720p clip: MP4 with AAC audio or MKV with MP3 audio."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"clip-{seconds}s.{container}"
    if path.exists():
        return path
    tmp = cache_dir / f".tmp-{path.name}"
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
           "-f", "lavfi", "-i", _VIDEO.format(seconds=seconds),
           "-f", "lavfi", "-i", _AUDIO.format(seconds=seconds),
           *_H264, *AUDIO_CODECS[container], "-t", str(seconds), "-f",
           "mp4" if container == "mp4" else "matroska", str(tmp)]
    print(f"generating {path.name} ...", flush=True)
    subprocess.run(cmd, check=True, timeout=3600)
    os.replace(tmp, path)
    return path


def random_mp4(size: int, cache_dir: Path) -> Path:
    """``size`` random bytes behind an MP4 ``ftyp`` box: passes the upload's type sniff."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"random-{size >> 20}MiB.mp4"
    if path.exists() and path.stat().st_size == size:
        return path
    tmp = cache_dir / f".tmp-{path.name}"
    with open(tmp, "wb") as out:
        out.write(MP4_HEADER)
        left = size - len(MP4_HEADER)
        while left > 0:
            block = os.urandom(min(left, 8 << 20))
            out.write(block)
            left -= len(block)
    os.replace(tmp, path)
    return path
