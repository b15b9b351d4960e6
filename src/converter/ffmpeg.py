"""Run ffmpeg: inspect a media file, then make an MP3 of its first audio stream."""

import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from common.errors import PermanentError, RetryableError

DURATION_TOLERANCE = 0.2  # seconds the MP3 may differ from the source
MIN_AUDIO_SECONDS = 0.05  # less than this is no audio at all (e.g. a truncated file)
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_AUDIO = re.compile(r"Stream #\d+:\d+.*?: Audio: (\w+)[^,\n]*(?:, (\d+) Hz)?(?:, ([^,\n]+))?")


@dataclass(frozen=True)
class MediaInfo:
    """What ffmpeg says about an input file."""

    duration: float | None
    audio_codec: str | None
    channels: str | None

    @property
    def multichannel(self) -> bool:
        """More than two audio channels (5.1, 7.1, quad, ...)."""
        return self.channels not in (None, "mono", "stereo", "1 channels", "2 channels")


def probe(ffmpeg: str, path: str) -> MediaInfo:
    """Read the container header; PermanentError when ffmpeg cannot read the file."""
    proc = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-i", path],
                          capture_output=True, text=True, errors="replace", timeout=120)
    out = proc.stderr
    if "Invalid data found" in out or "could not find codec" in out or "Input #0" not in out:
        raise PermanentError(f"ffmpeg cannot read this file ({_last_line(out)})")
    duration = None
    if match := _DURATION.search(out):
        hours, minutes, seconds = match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    audio = _AUDIO.search(out)
    if audio is None:
        return MediaInfo(duration, None, None)
    return MediaInfo(duration, audio.group(1), (audio.group(3) or "").strip() or None)


def command(ffmpeg: str, src: str, dst: str, info: MediaInfo, quality: int) -> list[str]:
    """The ffmpeg command line: audio only, first audio stream, MP3 out."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
           "-i", src, "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1"]
    if info.audio_codec == "mp3":
        cmd += ["-c:a", "copy"]  # already MP3: no re-encode
    else:
        if info.multichannel:
            cmd += ["-ac", "2"]  # stereo downmix
        cmd += ["-c:a", "libmp3lame", "-q:a", str(quality)]
    return cmd + ["-f", "mp3", "-progress", "pipe:1", dst]


def convert(ffmpeg: str, src: str, dst: str, info: MediaInfo, quality: int, timeout: float,
            on_progress: Callable[[float], None], abandon: threading.Event) -> float:
    """Make ``dst`` from ``src``; returns the MP3's duration in seconds."""
    if info.audio_codec is None:
        raise PermanentError("the video has no audio track")
    cmd = command(ffmpeg, src, dst, info, quality)
    deadline = time.monotonic() + timeout
    out_seconds = 0.0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          errors="replace") as proc:
        stderr_lines: list[str] = []
        reader = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True)
        reader.start()
        for line in proc.stdout:
            key, _, value = line.strip().partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                out_seconds = max(out_seconds, int(value) / 1e6)
                if info.duration:
                    on_progress(min(99.0, 100 * out_seconds / info.duration))
            if abandon.is_set() or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RetryableError("conversion interrupted" if abandon.is_set()
                                     else f"conversion took longer than {timeout:.0f}s")
        proc.wait()
        reader.join(timeout=5)
    if proc.returncode != 0:
        detail = _last_line("".join(stderr_lines))
        raise PermanentError(f"ffmpeg could not convert this file ({detail})")
    return out_seconds


def audio_duration(ffmpeg: str, src: str) -> float:
    """Length of the first audio stream itself (read without decoding)."""
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-i", src,
         "-map", "0:a:0", "-c", "copy", "-f", "null", "-progress", "pipe:1", "-"],
        capture_output=True, text=True, errors="replace", timeout=600)
    times = [int(line.split("=", 1)[1]) for line in proc.stdout.splitlines()
             if line.startswith("out_time_us=") and line.split("=", 1)[1].isdigit()]
    return max(times, default=0) / 1e6


def check_output(size: int, duration: float, info: MediaInfo,
                 source_audio: Callable[[], float]) -> None:
    """Reject an empty MP3 or one whose length differs from the source audio's."""
    if size == 0 or duration < MIN_AUDIO_SECONDS:
        raise PermanentError("the conversion produced no audio (is the file complete?)")
    if info.duration is None or abs(duration - info.duration) <= DURATION_TOLERANCE:
        return
    # The container's duration is its longest stream's: measure the audio track itself.
    expected = source_audio()
    if abs(duration - expected) > DURATION_TOLERANCE:
        raise PermanentError(
            f"the MP3 is {duration:.2f}s long but the source audio is {expected:.2f}s")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
