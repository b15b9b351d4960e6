"""Run ffmpeg on untrusted uploads: inspect a media file, then make an MP3 of its first audio."""

import json
import logging
import math
import os
import re
import resource
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from common.errors import PermanentError, RetryableError
from common.units import size
from converter import cover, sandbox
from converter import plan as plans
from converter.limits import DEFAULT_LIMITS, MIB, Limits, span, too_long
from converter.plan import Plan

# The containers the product accepts, as ffmpeg demuxer names; the upload check
# (gateway/sniff.py) lets the same families through. Nothing else is ever demuxed: no playlist
# or manifest (hls, dash, concat, sdp, imf), no image sequence, text, subtitle or device, so an
# upload can never make ffmpeg open another file or a network address.
MEDIA_FORMATS = ("mov", "matroska", "mp3", "aac", "flac", "ogg", "wav", "avi", "asf", "flv",
                 "mpeg", "mpegts", "amr", "rm")
# Input options of every run: read the one local file (no other protocol), with those demuxers.
# The mov demuxer's external references stay off (its `enable_drefs` defaults to false).
INPUT_GUARD = ["-protocol_whitelist", "file", "-format_whitelist", ",".join(MEDIA_FORMATS)]

log = logging.getLogger(__name__)
COVER_SECONDS = 60.0  # wall-clock limit of taking the cover picture
DURATION_TOLERANCE = 0.2  # seconds the MP3 may differ from the source
MIN_AUDIO_SECONDS = 0.05  # less than this is no audio at all (e.g. a truncated file)
PROBE_SECONDS = 120.0  # wall-clock limit of an inspection
MEASURE_SECONDS = 600.0  # wall-clock limit of measuring the source audio's length
_DURATION_LINE = re.compile(r"^  Duration: ", re.M)
# A demuxer's own warning (a tag's lines are indented, never bracketed): the duration is a guess
# from the opening bitrate (raw AAC, MP3 without its length header) and may be far off.
_ESTIMATED = re.compile(r"^\[[^\]\n]+\] Estimating duration from bitrate", re.M)
_DURATION = re.compile(r"^  Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?), ", re.M)
_HEADER = re.compile(r"^#(\w+) (\d+): (.*)$", re.M)  # framecrc's per-stream header lines
# loudnorm's report of its first pass, printed when its filter closes: after everything a
# file's tags can put in the report, so the last one is loudnorm's own.
_LOUDNORM = re.compile(r'\{\s*"input_i"[^{}]*\}')
LOUDNORM_KEYS = ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")
SILENCE_LUFS = -70.0  # at or below: nothing to level (EBU R128's absolute gate)


@dataclass(frozen=True)
class MediaInfo:
    """What ffmpeg says about an input file."""

    duration: float | None
    audio_codec: str | None
    channels: str | None
    sample_rate: int | None = None
    video: bool = False  # a video stream that is not just an attached picture

    @property
    def multichannel(self) -> bool:
        """More than two audio channels (5.1, 7.1, quad, ...)."""
        return self.channels not in (None, "mono", "stereo", "1 channels", "2 channels")


def probe(ffmpeg: str, path: str, limits: Limits = DEFAULT_LIMITS) -> MediaInfo:
    """Read the container header; PermanentError when it is not a media file ffmpeg can read.

    The duration comes from ffmpeg's report on the input, the only place it is printed; the
    streams' codecs, channels and sample rate from the framecrc muxer's header, which prints
    codec parameters and never a tag, so metadata cannot forge them. The video stream looked
    for is a moving picture (``V``), not a cover picture already in an audio file.
    """
    header: list[str] = []
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", *INPUT_GUARD, "-i", _local(path),
           "-map", "0:a:0?", "-map", "0:V:0?", "-sn", "-dn", "-c", "copy",
           "-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact",
           "-frames:a", "1", "-frames:v", "1", "-f", "framecrc", "-"]
    result = _run(cmd, path, limits, PROBE_SECONDS, header.append, file_bytes=0)
    _raise_if_cut_short(result, limits, PROBE_SECONDS, "inspecting the file")
    if not re.search(r"^Input #0, ", result.stderr, re.M):
        raise _not_media(result)
    streams: dict[str, dict[str, str]] = {}
    for key, index, value in _HEADER.findall("".join(header)):
        streams.setdefault(index, {}).setdefault(key, value.strip())
    by_type = {stream.get("media_type"): stream for stream in reversed(streams.values())}
    audio, video = by_type.get("audio"), "video" in by_type
    if audio is None:
        return MediaInfo(_duration(result.stderr), None, None, video=video)
    rate = audio.get("sample_rate", "")
    return MediaInfo(_duration(result.stderr), audio.get("codec_id"),
                     audio.get("channel_layout_name"),
                     int(rate) if rate.isdigit() else None, video)


def _duration(report: str) -> float | None:
    """The input's duration from ffmpeg's report: its one line indented by exactly two spaces.

    Tag values are printed indented further, but tag names and stream languages are printed as
    they are and could start such a line: a report with more than one is refused.
    """
    if len(_DURATION_LINE.findall(report)) != 1:
        raise PermanentError("the file's tags are malformed: they imitate ffmpeg's own report",
                             kind="not_media")
    if _ESTIMATED.search(report):
        return None  # unknown: the output is held against the audio measured instead
    match = _DURATION.search(report)
    if match is None:
        return None  # "Duration: N/A"
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def command(ffmpeg: str, src: str, dst: str, info: MediaInfo, plan: Plan,
            limits: Limits = DEFAULT_LIMITS, loudness: dict | None = None,
            chapters: str | None = None) -> list[str]:
    """The ffmpeg command line of a conversion.

    The MP3: the first audio stream, trimmed, copied or encoded (and levelled), without tags
    (the converter writes them), length and size capped. ``chapters``: a second output, with no
    stream, of the source's chapters moved by the trim, as ffmetadata.
    """
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
           *INPUT_GUARD, *plan.input_args(), "-i", _local(src)]
    cmd += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
            "-id3v2_version", "0"]
    if plan.copy:
        cmd += ["-c:a", "copy"]  # already MP3 and nothing asks for new frames
    else:
        if loudness is not None:
            downmix = "aformat=channel_layouts=stereo," if info.multichannel else ""
            cmd += ["-af", downmix + plans.loudnorm(loudness), "-ar", str(plan.sample_rate)]
        cmd += list(plan.encode)
    # A header may understate the length: the output stops just past the limit, which
    # convert() then reports, and at the size limit.
    cap = limits.media_seconds + 1
    cmd += ["-t", f"{cap:.3f}", "-fs", str(limits.mp3_bytes), "-f", "mp3",
            "-progress", "pipe:1", _local(dst)]
    if chapters is not None:
        cmd += ["-map_metadata", "0", "-map_chapters", "0", "-f", "ffmetadata",
                _local(chapters)]
    return cmd


def convert(ffmpeg: str, src: str, dst: str, info: MediaInfo, plan: Plan, timeout: float,
            on_progress: Callable[[float], None], abandon: threading.Event,
            limits: Limits = DEFAULT_LIMITS, loudness: dict | None = None,
            chapters: str | None = None) -> float:
    """Make ``dst`` (and ``chapters``) from ``src``; the MP3's duration in seconds."""
    check_media(info, limits)
    out_seconds = [0.0]
    total = plan.expected(info.duration) if info.duration else None
    low = 50.0 if loudness is not None else 0.0  # the measuring pass had the first half
    cmd = command(ffmpeg, src, dst, info, plan, limits, loudness, chapters)
    result = _run(cmd, src, limits, timeout, _progress(out_seconds, total, on_progress, low),
                  file_bytes=limits.mp3_bytes + MIB, stop=abandon)
    _raise_if_cut_short(result, limits, timeout, "the conversion")
    if result.returncode != 0 and "Error opening input" in result.tail:
        raise _not_media(result)
    if result.returncode != 0:
        raise PermanentError(f"ffmpeg could not convert this file ({_last_line(result.tail)})",
                             kind="not_media")
    if out_seconds[0] > limits.media_seconds + DURATION_TOLERANCE:
        raise PermanentError(too_long(limits), kind="too_long")
    if os.path.getsize(dst) >= limits.mp3_bytes:
        raise PermanentError(f"the MP3 would be larger than the {size(limits.mp3_bytes)} limit",
                             kind="limit")
    return out_seconds[0]


def extract_cover(ffmpeg: str, src: str, at: float, dst: str, abandon: threading.Event,
                  limits: Limits = DEFAULT_LIMITS) -> bytes | None:
    """The video's key frame at or before ``at`` seconds (one seek, one frame decoded), scaled
    to COVER_MAX_PIXELS, as a JPEG; else its first frame (the picture may end before ``at``:
    a title card, a still image); else None. A cover never fails a conversion."""
    for moment in (at, 0.0) if at > 0 else (0.0,):
        cmd = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
               *INPUT_GUARD, "-ss", f"{moment:.3f}", "-noaccurate_seek", "-threads", "1",
               "-i", _local(src), "-map", "0:V:0", "-frames:v", "1",
               "-vf", plans.cover_filter(), "-threads", "1", "-c:v", "mjpeg", "-q:v", "3",
               "-map_metadata", "-1", "-f", "mjpeg", _local(dst)]
        result = _run(cmd, src, limits, COVER_SECONDS, lambda _line: None,
                      file_bytes=cover.MAX_COVER_BYTES, stop=abandon)
        if result.stopped == "stop":
            raise RetryableError("conversion interrupted")
        picture = cover.read(dst) if result.returncode == 0 else None
        if picture is not None:
            return picture
    # No frame there (nor first), or a picture too large, too costly or unreadable.
    log.info("no cover: no frame of the video could be taken",
             extra={"detail": _last_line(result.tail)})
    return None


def measure_loudness(ffmpeg: str, src: str, info: MediaInfo, plan: Plan, timeout: float,
                     on_progress: Callable[[float], None], abandon: threading.Event,
                     limits: Limits = DEFAULT_LIMITS) -> dict | None:
    """loudnorm's first pass over the kept audio: its measurements, or None for silence."""
    check_media(info, limits)
    downmix = "aformat=channel_layouts=stereo," if info.multichannel else ""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
           *INPUT_GUARD, *plan.input_args(), "-i", _local(src), "-map", "0:a:0", "-vn", "-sn",
           "-dn", "-map_metadata", "-1", "-af", downmix + plans.loudnorm(),
           "-t", f"{limits.media_seconds + 1:.3f}", "-f", "null", "-progress", "pipe:1", "-"]
    total = plan.expected(info.duration) if info.duration else None
    result = _run(cmd, src, limits, timeout, _progress([0.0], total, on_progress, 0.0, 50.0),
                  file_bytes=0, stop=abandon)
    _raise_if_cut_short(result, limits, timeout, "measuring the loudness")
    found = _LOUDNORM.findall(result.tail)
    if result.returncode != 0 or not found:
        raise PermanentError("ffmpeg could not measure the loudness of this file "
                             f"({_last_line(result.tail)})", kind="not_media")
    try:
        report = json.loads(found[-1])
        measured = {key: float(report[key]) for key in LOUDNORM_KEYS}
    except (ValueError, KeyError, TypeError):
        raise PermanentError("ffmpeg's loudness measurement could not be read",
                             kind="internal") from None
    if not all(math.isfinite(value) for value in measured.values()) or (
            measured["input_i"] <= SILENCE_LUFS):
        return None
    return measured


def check_media(info: MediaInfo, limits: Limits) -> None:
    """Refuse, before any work, what is too long or has no audio."""
    if info.duration is not None and info.duration > limits.media_seconds:
        raise PermanentError(too_long(limits), kind="too_long")
    if info.audio_codec is None:
        raise PermanentError("the video has no audio track", kind="no_audio")


def _progress(out_seconds: list[float], total: float | None,
              on_progress: Callable[[float], None], low: float, high: float = 99.0):
    """A reader of ffmpeg's -progress lines: the time reached, as a share of low..high."""

    def read(line: str) -> None:
        key, _, value = line.strip().partition("=")
        if key == "out_time_us" and value.lstrip("-").isdigit():
            out_seconds[0] = max(out_seconds[0], int(value) / 1e6)
            if total:
                on_progress(min(high, low + (high - low) * out_seconds[0] / total))

    return read


def audio_duration(ffmpeg: str, src: str, limits: Limits = DEFAULT_LIMITS) -> float:
    """Length of the first audio stream itself (read without decoding)."""
    times: list[int] = []

    def progress(line: str) -> None:
        key, _, value = line.strip().partition("=")
        if key == "out_time_us" and value.isdigit():
            times.append(int(value))

    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", *INPUT_GUARD,
           "-i", _local(src), "-map", "0:a:0", "-c", "copy", "-f", "null", "-progress",
           "pipe:1", "-"]
    result = _run(cmd, src, limits, MEASURE_SECONDS, progress, file_bytes=0)
    _raise_if_cut_short(result, limits, MEASURE_SECONDS, "measuring the audio")
    return max(times, default=0) / 1e6


def check_output(size: int, duration: float, info: MediaInfo, plan: Plan,
                 source_audio: Callable[[], float]) -> None:
    """Reject an empty MP3 or one whose length differs from the (trimmed) source audio's."""
    if size == 0 or duration < MIN_AUDIO_SECONDS:
        if plan.start is not None:
            raise PermanentError("the trim start is past the end of the audio",
                                 kind="options")
        raise PermanentError("the conversion produced no audio (is the file complete?)",
                             kind="no_audio")
    if info.duration is not None and abs(duration - plan.expected(info.duration)) <= (
            DURATION_TOLERANCE):
        return
    # The container's duration is its longest stream's: measure the audio track itself.
    if info.duration is None and plan.span is None:
        return  # nothing to hold it against
    audio = source_audio()
    if info.duration is None and plan.span is not None and (
            (plan.start or 0) + plan.span > audio + DURATION_TOLERANCE):
        raise PermanentError(f"the trim end is past the end of the audio ({audio:.2f}s)",
                             kind="options")
    expected = plan.expected(audio)
    if abs(duration - expected) > DURATION_TOLERANCE:
        raise PermanentError(
            f"the MP3 is {duration:.2f}s long but the source audio is {expected:.2f}s",
            kind="not_media")


def rlimits(limits: Limits, file_bytes: int) -> dict[int, int]:
    """The OS limits of one ffmpeg run: processor time, address space, size of a written file."""
    return {resource.RLIMIT_CPU: limits.cpu_seconds, resource.RLIMIT_AS: limits.memory_bytes,
            resource.RLIMIT_FSIZE: file_bytes}


def _run(cmd: list[str], path: str, limits: Limits, timeout: float,
         on_line: Callable[[str], None], file_bytes: int,
         stop: threading.Event | None = None) -> sandbox.Finished:
    """Run ffmpeg in the job's directory (where ``path`` is) with the limits."""
    return sandbox.run(cmd, cwd=os.path.dirname(os.path.abspath(path)),
                       limits=rlimits(limits, file_bytes), timeout=timeout, on_line=on_line,
                       stop=stop)


def _raise_if_cut_short(result: sandbox.Finished, limits: Limits, timeout: float,
                        what: str) -> None:
    """Turn a run that was stopped or killed into the error a person reads."""
    if result.stopped == "stop":
        raise RetryableError("conversion interrupted")  # shutting down: another converter retries
    if result.stopped == "timeout":
        raise PermanentError(f"{what} took longer than the {span(timeout)} allowed",
                             kind="timeout")
    killed_by = -result.returncode
    # At the CPU limit the kernel kills with SIGKILL (soft = hard); the usage it reports then
    # is a little under the limit.
    if killed_by in (signal.SIGXCPU, signal.SIGKILL) and (
            result.cpu_seconds >= limits.cpu_seconds / 2):
        raise PermanentError(f"{what} needed more than the {span(limits.cpu_seconds)} of "
                             "processor time allowed", kind="limit")
    if killed_by == signal.SIGXFSZ:
        raise PermanentError(f"the MP3 would be larger than the {size(limits.mp3_bytes)} limit",
                             kind="limit")
    if killed_by == signal.SIGKILL or (result.returncode != 0 and any(
            sign in result.tail for sign in ("Cannot allocate memory", "pthread_create()"))):
        raise PermanentError(f"{what} needed more than the {size(limits.memory_bytes)} of "
                             "memory allowed", kind="limit")


def _not_media(result: sandbox.Finished) -> PermanentError:
    """ffmpeg could not open the input, or would not: its format is not on the list."""
    detail = ("its format is not one of the accepted audio and video containers"
              if "not on whitelist" in result.tail else _last_line(result.tail))
    return PermanentError(f"not a media file: ffmpeg cannot read this file ({detail})",
                          kind="not_media")


def _local(path: str) -> str:
    """The path as a local-file URL: a name is never read as another protocol."""
    return "file:" + path


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
