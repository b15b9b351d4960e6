"""Small test media made with ffmpeg's lavfi sources, and probes of media files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

SECONDS = 3
_VIDEO = ["-f", "lavfi", "-i", f"testsrc=size=160x120:rate=15:duration={SECONDS}"]
_STEREO = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}"]
_SURROUND = [
    "-f",
    "lavfi",
    "-i",
    "aevalsrc=sin(440*2*PI*t)|sin(550*2*PI*t)|sin(660*2*PI*t)|0.5*sin(60*2*PI*t)"
    f"|sin(770*2*PI*t)|sin(880*2*PI*t):s=48000:c=5.1:d={SECONDS}",
]
_H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]

# kind -> (file name, ffmpeg arguments between the inputs and the output)
KINDS: dict[str, tuple[str, list[str]]] = {
    "mp4_aac51": ("surround.mp4", [*_VIDEO, *_SURROUND, *_H264, "-c:a", "aac", "-ac", "6"]),
    "mkv_mp3": ("clip.mkv", [*_VIDEO, *_STEREO, *_H264, "-c:a", "libmp3lame", "-ac", "2"]),
    "webm_opus": (
        "clip.webm",
        [*_VIDEO, *_STEREO, "-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"],
    ),
    "mov": ("clip.mov", [*_VIDEO, *_STEREO, *_H264, "-c:a", "aac", "-ac", "2"]),
    "no_audio": ("silent.mp4", [*_VIDEO, *_H264]),
}
TEXT_KIND = ("text", "not_a_video.mp4")


def ffmpeg_exe() -> str:
    """FFMPEG_BINARY if set, else the ffmpeg shipped in the imageio-ffmpeg wheel."""
    if os.environ.get("FFMPEG_BINARY"):
        return os.environ["FFMPEG_BINARY"]
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_media(kind: str, directory: Path) -> Path:
    """The test file of this kind in directory, generated on first use."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if kind == TEXT_KIND[0]:
        path = directory / TEXT_KIND[1]
        if not path.exists():
            path.write_text("This is a text file, not a video.\n" * 20)
        return path
    if kind not in KINDS:
        raise ValueError(f"unknown media kind {kind!r}; known: {sorted(KINDS) + ['text']}")
    name, args = KINDS[kind]
    path = directory / name
    if path.exists():
        return path
    tmp = directory / f".tmp-{name}"
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args, "-t", str(SECONDS)]
    subprocess.run([*cmd, str(tmp)], check=True, capture_output=True, timeout=120)
    os.replace(tmp, path)
    return path


def _ffprobe(path: Path, *args: str) -> dict | None:
    """ffprobe's JSON answer, or None when ffprobe is not installed."""
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    out = subprocess.run(
        [exe, "-v", "error", "-of", "json", *args, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(out.stdout or "{}")


def _ffmpeg_info(path: Path) -> str:
    """What `ffmpeg -i` prints about a file."""
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, timeout=60
    )
    return out.stderr


def ffprobe_duration(path: str | os.PathLike) -> float | None:
    """Duration in seconds, None when the file is not readable media."""
    probe = _ffprobe(Path(path), "-show_entries", "format=duration")
    if probe is not None:
        duration = probe.get("format", {}).get("duration")
        return float(duration) if duration not in (None, "N/A") else None
    match = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", _ffmpeg_info(Path(path)))
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def ffprobe_codec(path: str | os.PathLike, stream: str = "a") -> str | None:
    """Codec name of the first audio ("a") or video ("v") stream, None when there is none."""
    probe = _ffprobe(
        Path(path), "-select_streams", f"{stream}:0", "-show_entries", "stream=codec_name"
    )
    if probe is not None:
        streams = probe.get("streams") or []
        return streams[0].get("codec_name") if streams else None
    label = {"a": "Audio", "v": "Video"}[stream]
    match = re.search(rf"Stream #\d+:\d+.*?: {label}: (\w+)", _ffmpeg_info(Path(path)))
    return match.group(1) if match else None
