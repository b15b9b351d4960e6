"""Run ffmpeg on untrusted uploads: inspect a media file, then make an MP3 of its first audio."""

import contextvars
import dataclasses
import json
import logging
import math
import os
import re
import resource
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from common.errors import PermanentError, RetryableError
from common.units import size
from converter import cover, sandbox
from converter import plan as plans
from converter import progress as progresses
from converter import source as sources
from converter.limits import DEFAULT_LIMITS, MIB, Limits, span, too_long
from converter.plan import Plan

# The containers the product accepts, as ffmpeg demuxer names; the upload check
# (gateway/sniff.py) lets the same families through. Nothing else is ever demuxed: no playlist
# or manifest (hls, dash, concat, sdp, imf), no image sequence, text, subtitle or device, so an
# upload can never make ffmpeg open another file or a network address.
MEDIA_FORMATS = ("mov", "matroska", "mp3", "aac", "flac", "ogg", "wav", "avi", "asf", "flv",
                 "mpeg", "mpegts", "amr", "rm")
# Every run reads one input, the video, with those demuxers only (``guard``); the mov demuxer's
# external references stay off (its `enable_drefs` defaults to false).
Video = sources.LocalFile | sources.Served  # what a run reads: a path becomes a LocalFile
PROGRESS_PERIOD = 0.5  # seconds between ffmpeg's progress reports (each checks the lane's limit)

log = logging.getLogger(__name__)
CONVERT_SECONDS = 3600.0  # FFMPEG_TIMEOUT_SECONDS: wall-clock limit of a conversion
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
# The measuring pass's report: the ebur128 filter's summary, printed when the filter closes.
# Every file tag (and chapter) ffmpeg prints comes before it, in the report on the input that
# ends with "Stream mapping:"; a tag's value is printed behind a "    : " margin but its name
# as it is, so a name can imitate a whole summary. Only a summary after the last
# "Stream mapping:" is ffmpeg's own, and of those the last (see _report).
_MAPPING = "\nStream mapping:\n"
_LEVEL = r"[-+]?(?:\d+(?:\.\d+)?|inf|nan)"
_EBUR128 = re.compile(
    r"^\[Parsed_ebur128_\d+ @ 0x[0-9a-fA-F]+\] Summary:\n\n"
    r"  Integrated loudness:\n"
    rf"    I: *(?P<input_i>{_LEVEL}) LUFS\n"
    rf"    Threshold: *(?P<input_thresh>{_LEVEL}) LUFS\n\n"
    r"  Loudness range:\n"
    rf"    LRA: *(?P<input_lra>{_LEVEL}) LU\n"
    rf"(?:    [\w ]+: *{_LEVEL} LUFS\n){{3}}\n"
    r"  True peak:\n"
    rf"    Peak: *(?P<input_tp>{_LEVEL}) dBFS$", re.M)
# What the measuring pass runs: EBU R128's integrated loudness, its gate and loudness range,
# and the true peak (oversampled), at the audio's own rate (no faster lower: at 22.05 kHz it
# reads 0.7-0.9 LU low); nothing printed per frame.
MEASURE_FILTER = "ebur128=peak=true:framelog=quiet"
# loudnorm's own first pass, run only when its dynamic mode follows (FFmpeg.measure_loudness):
# its JSON report.
_LOUDNORM = re.compile(r'\{\s*"input_i"[^{}]*\}')
LOUDNORM_KEYS = ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")
# loudnorm's `offset`: the gain its second pass adds in dynamic mode only (in linear mode it
# applies target - measured_I itself and ignores it). loudnorm's own first pass reports it as
# the target minus the loudness of its *dynamic* output, i.e. how far its limiter and
# smoothing left that first pass short of the target. ebur128 measures the input only: the
# gain it would suggest, target - I, is already what the dynamic mode applies, and adding it
# again would double it. Nothing in ebur128's numbers predicts the dynamic mode's shortfall,
# so no correction: 0 dB (loudnorm's default). Dynamic mode then aims at the target on its own
# and lands under it by that shortfall (0.6-0.9 LU on noise; ~6 LU on audio with clicks far
# above its level, tests/unit/converter/test_loudness_passes.py). Linear mode, which the
# second pass takes whenever the peak and range allow, is exact.
TARGET_OFFSET = 0.0
# loudnorm reads a measured loudness range of 0 as "not measured" (its option's default) and
# then refuses linear mode. ebur128's 0.0 is a measurement: a steady level (under 0.05 LU of
# range), the audio linear gain suits best. loudnorm is given the least range it takes as one.
MIN_LRA = 0.01
SILENCE_LUFS = -70.0  # at or below: nothing to level (EBU R128's absolute gate)
# The most audio channels accepted: 22.2, the largest speaker layout ffmpeg mixes down to
# stereo. More (a multitrack recording's 32 or 64) are refused from the probe.
MAX_CHANNELS = 24
# ffmpeg's name of a layout it has no name for: "9 channels", "13 channels (FL+FR+...)".
_COUNTED = re.compile(r"^(\d+) channels\b")
_INPUT_FORMAT = re.compile(r"^Input #0, (\w+)[\w,]*, from ", re.M)
# ffmpeg failures a person can act on, recognised in its last lines: (sign, the cause as a
# clause). Anything else gets GENERIC_FAILURE; ffmpeg's own words (component tags with memory
# addresses, option and source names) only go to the log.
MIX_IT_DOWN = "; mix it down to stereo before uploading"
_CAUSES: tuple[tuple[re.Pattern, Callable[[re.Match], str]], ...] = (
    (re.compile(r"Rematrix is needed between (\d+) channels and"),
     lambda m: f"its {m[1]} channels have no speaker layout (such as 5.1 or 7.1) that says "
               f"how to mix them down to stereo{MIX_IT_DOWN}"),
    (re.compile(r"Input channel layout '(?:(\d+) channels)?[^'\n]*' is not supported"),
     lambda m: (f"its {m[1]} channels are" if m[1] else "its channels are") +
               f" in a speaker layout that cannot be mixed down to stereo{MIX_IT_DOWN}"),
    (re.compile(r"Invalid data found when processing input"),
     lambda m: "the file is damaged, or its data is in no format ffmpeg knows"),
)
GENERIC_FAILURE = ("ffmpeg failed on this file, which may be damaged or use something the "
                   "converter does not support")


@dataclass(frozen=True)
class MediaInfo:
    """What ffmpeg says about an input file."""

    duration: float | None
    audio_codec: str | None
    channels: str | None
    sample_rate: int | None = None
    video: bool = False  # a video stream that is not just an attached picture
    container: str | None = None  # ffmpeg's demuxer: "matroska", "mov", "wav", ...

    @property
    def multichannel(self) -> bool:
        """More than two audio channels (5.1, 7.1, quad, ...)."""
        return self.channels not in (None, "mono", "stereo", "1 channels", "2 channels")

    @property
    def channel_count(self) -> int | None:
        """The audio's channels when its layout has no name ("64 channels"), else None (every
        named layout, mono to 22.2, has at most MAX_CHANNELS)."""
        match = _COUNTED.match(self.channels or "")
        return int(match[1]) if match else None


class LongJob(Exception):
    """A pass decoded more media than the `video` lane lets one pass decode: the job goes to
    the long lane (``Jobs.to_long_lane``), whatever its container claimed."""


@dataclass(frozen=True)
class FFmpeg:
    """ffmpeg as one job runs it: the binary, the job's limits, the wall-clock limit of a
    conversion and the event that abandons the job. Each method is one pass, its own ffmpeg
    process in the sandbox (``_run``), on the input guard's protocols and formats."""

    binary: str
    limits: Limits = DEFAULT_LIMITS
    timeout: float = CONVERT_SECONDS  # wall-clock limit of measuring the loudness, converting
    abandon: threading.Event = field(default_factory=threading.Event)  # set: stop and retry
    # media seconds one pass may decode before it stops with LongJob; None: no such limit
    lane_seconds: float | None = None

    def probe(self, src: "str | Video") -> MediaInfo:
        """Read the container header; PermanentError when it is not a media file ffmpeg can
        read.

        The duration comes from ffmpeg's report on the input, the only place it is printed;
        the streams' codecs, channels and sample rate from the framecrc muxer's header, which
        prints codec parameters and never a tag, so metadata cannot forge them. The video
        stream looked for is a moving picture (``V``), not a cover picture already in an audio
        file.
        """
        header: list[str] = []
        source = sources.of(src)
        cmd = [self.binary, "-hide_banner", "-nostdin", "-nostats", *guard(source),
               "-i", source.url("probe"), "-map", "0:a:0?", "-map", "0:V:0?", "-sn", "-dn",
               "-c", "copy", "-map_metadata", "-1", "-map_chapters", "-1",
               "-fflags", "+bitexact", "-frames:a", "1", "-frames:v", "1", "-f", "framecrc", "-"]
        result = self._run(cmd, source, PROBE_SECONDS, header.append, file_bytes=0,
                           stoppable=False)
        _raise_if_cut_short(result, self.limits, PROBE_SECONDS, "inspecting the file")
        if not re.search(r"^Input #0, ", result.stderr, re.M):
            raise _not_media(result)
        streams: dict[str, dict[str, str]] = {}
        for key, index, value in _HEADER.findall("".join(header)):
            streams.setdefault(index, {}).setdefault(key, value.strip())
        by_type = {stream.get("media_type"): stream for stream in reversed(streams.values())}
        audio, video = by_type.get("audio"), "video" in by_type
        demuxer = _INPUT_FORMAT.search(result.stderr)
        container = demuxer[1] if demuxer else None
        if audio is None:
            return MediaInfo(_duration(result.stderr), None, None, video=video,
                             container=container)
        rate = audio.get("sample_rate", "")
        return MediaInfo(_duration(result.stderr), audio.get("codec_id"),
                         audio.get("channel_layout_name"),
                         int(rate) if rate.isdigit() else None, video, container)

    def measure_loudness(self, src: "str | Video", info: MediaInfo, plan: Plan,
                         on_progress: Callable[[float], None]) -> dict | None:
        """Measure the kept audio for loudnorm's second pass: its measurements as loudnorm
        takes them (LOUDNORM_KEYS), or None for silence.

        EBU R128 with the ebur128 filter first (the first quarter of the job's progress).
        When those values let the second pass apply a plain gain (``plan.linear``), that is
        all. Otherwise loudnorm levels dynamically, and its gain then needs the shortfall only
        its own first pass measures (``target_offset``, see TARGET_OFFSET): that pass runs too
        (the second quarter), and its values are the ones used, as before there was an
        ebur128 pass. The audio measured is the one the second pass levels: trimmed the same
        way, mixed down to stereo when it has more channels, capped just past the length
        limit."""
        summary = self._measuring_pass(src, info, plan, on_progress, MEASURE_FILTER, 0.0)
        measured = {key: float(summary[key]) for key in LOUDNORM_KEYS[:4]}
        if not all(math.isfinite(value) for value in measured.values()) or (
                measured["input_i"] <= SILENCE_LUFS):
            on_progress(50.0)
            return None
        measured = {**measured, "input_lra": max(measured["input_lra"], MIN_LRA),
                    "target_offset": TARGET_OFFSET}
        if plans.linear(measured):
            on_progress(50.0)
            return measured
        report = self._measuring_pass(src, info, plan, on_progress, plans.loudnorm(), 25.0)
        try:
            loudnorm = json.loads(report[0])
            return {key: float(loudnorm[key]) for key in LOUDNORM_KEYS}
        except (ValueError, KeyError, TypeError):
            raise PermanentError("ffmpeg's loudness measurement could not be read",
                                 kind="internal") from None

    def _measuring_pass(self, src: "str | Video", info: MediaInfo, plan: Plan,
                        on_progress: Callable[[float], None], measure: str,
                        low: float) -> re.Match:
        """One pass of ``measure`` (ebur128 or loudnorm's first pass) over the kept audio,
        reporting progress as low..low+25 %: its report (``_report``)."""
        limits = self.limits
        check_media(info, limits)
        video, name = sources.of(src), "measure" if measure == MEASURE_FILTER else "loudnorm"
        downmix = "aformat=channel_layouts=stereo," if info.multichannel else ""
        cmd = [self.binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
               *guard(video), *plan.input_args(), "-i", video.url(name), "-map", "0:a:0", "-vn",
               "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
               "-af", downmix + measure,
               "-t", f"{limits.media_seconds + 1:.3f}", "-f", "null", *_progress(),
               "-"]
        meter = _Meter(video, name, info, plan, on_progress, low, low + 25.0,
                       self.lane_seconds)
        result = self._run(cmd, video, self.timeout, meter, file_bytes=0,
                           on_start=meter.started)
        _raise_if_cut_short(result, limits, self.timeout, "measuring the loudness")
        if meter.seconds > limits.media_seconds + DURATION_TOLERANCE:
            # a header that understates the length: refused now, not after a second pass
            raise PermanentError(too_long(limits), kind="too_long")
        report = _report(result.tail, _EBUR128 if measure == MEASURE_FILTER else _LOUDNORM)
        if result.returncode != 0 or report is None:
            raise PermanentError("the loudness of the audio could not be measured: "
                                 f"{_explain(result)}",
                                 kind="not_media")
        meter.finished()
        return report

    def convert(self, src: "str | Video", dst: str, info: MediaInfo, plan: Plan,
                on_progress: Callable[[float], None], loudness: dict | None = None,
                chapters: str | None = None) -> float:
        """Make ``dst`` (and ``chapters``) from ``src``; the MP3's duration in seconds."""
        limits = self.limits
        check_media(info, limits)
        low = 50.0 if loudness is not None else 0.0  # the measuring passes had the first half
        video = sources.of(src)
        meter = _Meter(video, "convert", info, plan, on_progress, low,
                       lane_seconds=self.lane_seconds)
        cmd = command(self.binary, video, dst, info, plan, limits, loudness, chapters)
        result = self._run(cmd, video, self.timeout, meter, file_bytes=limits.mp3_bytes + MIB,
                           on_start=meter.started)
        _raise_if_cut_short(result, limits, self.timeout, "the conversion")
        if result.returncode != 0 and "Error opening input" in result.tail:
            raise _not_media(result)
        if result.returncode != 0:
            raise PermanentError(f"the audio could not be converted: {_explain(result)}",
                                 kind="not_media")
        if meter.seconds > limits.media_seconds + DURATION_TOLERANCE:
            raise PermanentError(too_long(limits), kind="too_long")
        if os.path.getsize(dst) >= limits.mp3_bytes:
            raise PermanentError(
                f"the MP3 would be larger than the {size(limits.mp3_bytes)} limit", kind="limit")
        meter.finished()
        return meter.seconds

    def extract_cover(self, src: "str | Video", at: float, dst: str) -> bytes | None:
        """The video's frame at about ``at`` seconds (ffmpeg seeks to the key frame at or
        before it and decodes, and scales, every frame from there: the fewer key frames, the
        more work), at most COVER_MAX_PIXELS a side, as a JPEG; else its first frame (the
        picture may end before ``at``: a title card, a still image); else None. A cover never
        fails a conversion."""
        video = sources.of(src)
        for moment in (at, 0.0) if at > 0 else (0.0,):
            cmd = [self.binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
                   "-y", *guard(video), "-ss", f"{moment:.3f}", "-noaccurate_seek",
                   "-threads", "1", "-i", video.url("cover"), "-map", "0:V:0", "-frames:v", "1",
                   "-vf", plans.cover_filter(), "-threads", "1", "-c:v", "mjpeg", "-q:v", "3",
                   "-map_metadata", "-1", "-f", "mjpeg", _local(dst)]
            result = self._run(cmd, video, COVER_SECONDS, lambda _line: None,
                               file_bytes=cover.MAX_COVER_BYTES)
            if result.stopped == "stop":
                raise RetryableError("conversion interrupted")
            picture = cover.read(dst) if result.returncode == 0 else None
            if picture is not None:
                return picture
        # No frame there (nor first), or a picture too large, too costly or unreadable.
        log.info("no cover: no frame of the video could be taken",
                 extra={"detail": _last_line(result.tail)})
        return None

    def cover_alongside(self, src: "str | Video", at: float | None, dst: str) -> "CoverAlongside":
        """``extract_cover(src, at, dst)`` in a thread of its own while the ``with`` block (the
        conversion) runs; ``at`` None: no cover. See CoverAlongside."""
        return CoverAlongside(self, src, at, dst)

    def audio_duration(self, src: "str | Video") -> float:
        """Length of the first audio stream itself (read without decoding)."""
        times: list[int] = []

        def progress(line: str) -> None:
            key, _, value = line.strip().partition("=")
            if key == "out_time_us" and value.isdigit():
                times.append(int(value))

        video = sources.of(src)
        cmd = [self.binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
               *guard(video), "-i", video.url("audio"), "-map", "0:a:0", "-c", "copy",
               "-f", "null", *_progress(), "-"]
        result = self._run(cmd, video, MEASURE_SECONDS, progress, file_bytes=0, stoppable=False)
        _raise_if_cut_short(result, self.limits, MEASURE_SECONDS, "measuring the audio")
        return max(times, default=0) / 1e6

    def _run(self, cmd: list[str], video: "Video", timeout: float,
             on_line: Callable[[str], None], file_bytes: int, stoppable: bool = True,
             on_start: Callable[[int], None] = lambda _pid: None) -> sandbox.Finished:
        """Run ffmpeg in the job's directory (``video.cwd``) with the limits; killed when the
        job is abandoned, unless not ``stoppable`` (the inspections: short, bounded). When
        serving the video failed on our side meanwhile, that error, not the run's outcome; its
        output never holds the video's secret URL (logged on a failure)."""
        result = sandbox.run(cmd, cwd=video.cwd, limits=rlimits(self.limits, file_bytes),
                             timeout=timeout, on_line=on_line,
                             stop=self.abandon if stoppable else None, on_start=on_start)
        video.check()
        return dataclasses.replace(result, stderr=video.redact(result.stderr),
                                   tail=video.redact(result.tail))


class CoverAlongside:
    """The cover picture taken while the conversion runs: ``FFmpeg.extract_cover`` in a thread,
    its own ffmpeg process in the same sandbox, with the same limits and abandon event.

    ``with run.cover_alongside(src, at, dst) as taking: <convert>``; leaving the block waits
    for the picture, then in ``taking.picture`` (a JPEG or None). When the block raises, the
    cover's ffmpeg is stopped and waited for, and the picture discarded: no thread or process
    outlives the block. The cover's own errors are raised on leaving a block that succeeded
    (an abandoned job's "conversion interrupted"); it never fails a conversion otherwise.
    """

    def __init__(self, run: FFmpeg, src: str, at: float | None, dst: str):
        self.picture: bytes | None = None
        self.taken = threading.Event()  # set once the picture is (or no picture will be) there
        self._failed: BaseException | None = None
        self._discard = threading.Event()
        self._thread: threading.Thread | None = None
        if at is not None:
            stopped = dataclasses.replace(run, abandon=_Either(run.abandon, self._discard))
            context = contextvars.copy_context()  # the job's log fields
            self._thread = threading.Thread(
                target=context.run, args=(self._take, stopped, src, at, dst),
                name="cover", daemon=True)
        else:
            self.taken.set()

    def __enter__(self) -> "CoverAlongside":
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._thread is None:
            return
        if error is not None:
            self._discard.set()  # the conversion failed: the cover is of no use
        self._thread.join()
        if error is not None:
            self.picture = None
        elif self._failed is not None:
            raise self._failed

    def _take(self, run: FFmpeg, src: str, at: float, dst: str) -> None:
        try:
            self.picture = run.extract_cover(src, at, dst)
        except BaseException as exc:  # noqa: BLE001 - handed to the converting thread
            self._failed = exc
        finally:
            self.taken.set()


class _Either:
    """A stop event (as ``sandbox.run`` reads one) set once either of two events is."""

    def __init__(self, first: threading.Event, second: threading.Event):
        self._events = (first, second)

    def is_set(self) -> bool:
        return any(event.is_set() for event in self._events)


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


def _report(tail: str, pattern: re.Pattern) -> re.Match | None:
    """The measuring filter's report (ebur128's summary, loudnorm's JSON) in the last lines
    of a measuring pass, or None.

    Only what follows the last "Stream mapping:" is read: the report on the input, where a
    file's tags are printed, ends before the real one, so a tag that imitates both the line
    and a summary is still before it. The measuring pass prints no tag after it (it maps no
    metadata or chapter to its output). Of the reports there, the last: the filter's own,
    printed as the pass ends. When the tail no longer holds the line, all of it came later.
    """
    after = tail[tail.rfind(_MAPPING) + len(_MAPPING):] if _MAPPING in tail else tail
    found = list(pattern.finditer(after))
    return found[-1] if found else None


def command(ffmpeg: str, src: "str | Video", dst: str, info: MediaInfo, plan: Plan,
            limits: Limits = DEFAULT_LIMITS, loudness: dict | None = None,
            chapters: str | None = None) -> list[str]:
    """The ffmpeg command line of a conversion.

    The MP3: the first audio stream, trimmed, copied or encoded (and levelled), without tags
    (the converter writes them), length and size capped. ``chapters``: a second output, with no
    stream, of the source's chapters moved by the trim, as ffmetadata.
    """
    video = sources.of(src)
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
           *guard(video), *plan.input_args(), "-i", video.url("convert")]
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
            *_progress(), _local(dst)]
    if chapters is not None:
        cmd += ["-map_metadata", "0", "-map_chapters", "0", "-f", "ffmetadata",
                _local(chapters)]
    return cmd


def check_media(info: MediaInfo, limits: Limits) -> None:
    """Refuse, before any work, what is too long, has no audio or too many channels."""
    if info.duration is not None and info.duration > limits.media_seconds:
        raise PermanentError(too_long(limits), kind="too_long")
    if info.audio_codec is None:
        raise PermanentError("the video has no audio track", kind="no_audio")
    count = info.channel_count
    if count is not None and count > MAX_CHANNELS:
        raise PermanentError(f"the audio has {count} channels; at most {MAX_CHANNELS} are "
                             "supported: mix it down to stereo before uploading",
                             kind="not_media")


def guard(video: "Video") -> list[str]:
    """The input options of every run: the video's own protocols (``converter.source``) and
    the accepted demuxers, nothing else."""
    return ["-protocol_whitelist", video.protocols, *video.options,
            "-format_whitelist", ",".join(MEDIA_FORMATS)]


def _progress() -> list[str]:
    """ffmpeg's arguments for its progress reports on stdout, which _Meter reads."""
    return ["-stats_period", f"{PROGRESS_PERIOD:g}", "-progress", "pipe:1"]


class _Meter:
    """Reads ffmpeg's -progress lines: the media time reached (``seconds``), and the share of
    the pass done, as low..high percent, for ``on_progress``. The share comes from that time
    against the probed length and from how far ffmpeg has read into the input (progress.py)."""

    def __init__(self, video: "Video", name: str, info: MediaInfo, plan: Plan,
                 on_progress: Callable[[float], None], low: float, high: float = 99.0,
                 lane_seconds: float | None = None):
        self.video, self.name = video, name
        self.on_progress, self.low, self.high = on_progress, low, high
        self.lane_seconds = lane_seconds
        self.seconds = 0.0
        self.pid: int | None = None
        whole = plan.start is None and plan.span is None
        self.estimate = progresses.Estimate(
            plan.expected(info.duration) if info.duration else None, video.size,
            linear=whole and info.container in progresses.LINEAR_FORMATS)

    def started(self, pid: int) -> None:
        self.pid = pid

    def __call__(self, line: str) -> None:
        key, _, value = line.strip().partition("=")
        if key != "out_time_us" or not value.lstrip("-").isdigit():
            return
        self.seconds = max(self.seconds, int(value) / 1e6)
        if self.lane_seconds is not None and self.seconds > self.lane_seconds:
            raise LongJob(f"more than {self.lane_seconds:g} s of media decoded")
        position = self.video.position(self.name, self.pid)
        done = self.estimate.update(self.seconds, position)
        if done is not None:
            self._report(done)

    def finished(self) -> None:
        """The pass is over: all of its share is done."""
        self._report(1.0)

    def _report(self, done: float) -> None:
        self.on_progress(self.low + (self.high - self.low) * done)


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
              if "not on whitelist" in result.tail else _explain(result))
    return PermanentError(f"not a media file: ffmpeg cannot read this file ({detail})",
                          kind="not_media")


def explain(tail: str) -> str:
    """What to tell a person about an ffmpeg failure whose last lines are ``tail``: the cause
    when it is one we know, else a generic sentence; never ffmpeg's own words."""
    for sign, sentence in _CAUSES:
        match = sign.search(tail)
        if match:
            return sentence(match)
    return GENERIC_FAILURE


def _explain(result: sandbox.Finished) -> str:
    """explain(), with ffmpeg's own last lines in the log for whoever investigates."""
    log.warning("ffmpeg failed", extra={"returncode": result.returncode,
                                        "detail": result.tail[-2000:]})
    return explain(result.tail)


def _local(path: str) -> str:
    """The path as a local-file URL: a name is never read as another protocol."""
    return "file:" + path


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
