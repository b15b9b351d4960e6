"""What ffmpeg is asked to do for one job: its options held against what the probe found."""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import PermanentError
from common.options import MIN_TRIM_SECONDS, QUALITIES, Options, clock

# EBU R128 for spoken word and music on phones and podcasts (the level podcast platforms use).
LOUDNESS = {"I": -16.0, "TP": -1.5, "LRA": 11.0}
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
COVER_MAX_PIXELS = 600  # the cover's longer side at most
COVER_AT = 1 / 3  # the cover is the frame at about a third of the kept part
TRIM_TOLERANCE = 0.2  # seconds a trim end may pass the probed duration (containers round)


@dataclass(frozen=True)
class Plan:
    """One conversion's recipe."""

    start: float | None  # where the MP3 begins in the source (None: its beginning)
    span: float | None  # seconds kept from there (None: to the end)
    copy: bool  # the source's MP3 frames are kept as they are
    encode: tuple[str, ...]  # encoder arguments when not copying
    normalize: bool
    sample_rate: int | None  # of the output when normalizing (loudnorm works at 192 kHz)
    cover_at: float | None  # source time of the cover frame; None: no cover

    def expected(self, source_seconds: float) -> float:
        """The MP3's length for a source audio of this length."""
        end = source_seconds if self.span is None else min(
            source_seconds, (self.start or 0) + self.span)
        return max(0.0, end - (self.start or 0))

    def input_args(self) -> list[str]:
        """The trim, as input options: an exact seek in every container the service reads."""
        args = []
        if self.start is not None:
            args += ["-ss", f"{self.start:.3f}"]
        if self.span is not None:
            args += ["-t", f"{self.span:.3f}"]
        return args


def make(info, options: Options, default_quality: int) -> Plan:
    """The plan for a probed source; PermanentError when the trim lies outside the media."""
    start, end = options.start, options.end
    if info.duration is not None:
        if start is not None and start >= info.duration:
            raise PermanentError(f"the trim start {clock(start)} is past the end of the media "
                                 f"({clock(info.duration)})", kind="options")
        if start is not None and info.duration - start < MIN_TRIM_SECONDS:
            raise PermanentError(f"the trim start {clock(start)} leaves less than "
                                 f"{MIN_TRIM_SECONDS:g} s of the media "
                                 f"({clock(info.duration)} long)", kind="options")
        if end is not None and end > info.duration + TRIM_TOLERANCE:
            raise PermanentError(f"the trim end {clock(end)} is past the end of the media "
                                 f"({clock(info.duration)})", kind="options")
    copy = info.audio_codec == "mp3" and not options.reencodes
    encode: list[str] = []
    if not copy:
        if info.multichannel:
            encode += ["-ac", "2"]  # stereo downmix
        encode += ["-c:a", "libmp3lame"]
        quality = QUALITIES.get(options.quality or "")
        encode += quality.ffmpeg_args if quality else ("-q:a", str(default_quality))
    sample_rate = None
    if options.normalize:
        sample_rate = info.sample_rate if info.sample_rate in MP3_SAMPLE_RATES else 48000
    cover_at = None
    if options.cover == "auto" and info.video:
        first = start or 0.0
        last = end if end is not None else info.duration
        cover_at = first + ((last - first) * COVER_AT if last is not None else 0.0)
    return Plan(start=start, span=None if end is None else end - (start or 0.0), copy=copy,
                encode=tuple(encode), normalize=options.normalize, sample_rate=sample_rate,
                cover_at=cover_at)


def loudnorm(measured: dict | None = None) -> str:
    """The loudnorm filter levelling to LOUDNESS with the measuring pass's values
    (``FFmpeg.measure_loudness``): linear gain when ``linear`` says so, else loudnorm's dynamic
    mode. Without values: loudnorm's own first pass, measuring (its JSON report)."""
    targets = ":".join(f"{key}={value:g}" for key, value in LOUDNESS.items())
    if measured is None:
        return f"loudnorm={targets}:print_format=json"
    return (f"loudnorm={targets}:measured_I={measured['input_i']:.2f}"
            f":measured_TP={measured['input_tp']:.2f}:measured_LRA={measured['input_lra']:.2f}"
            f":measured_thresh={measured['input_thresh']:.2f}"
            f":offset={measured['target_offset']:.2f}:linear=true:print_format=none")


def linear(measured: dict) -> bool:
    """Whether loudnorm's second pass applies a plain gain with these values (its linear mode,
    af_loudnorm.c): the gain to the target keeps the true peak under its ceiling, the range is
    within the target's, and each value was measured (a 0 range, a 99 peak or a -70 gate read
    as "not measured")."""
    gain = LOUDNESS["I"] - round(measured["input_i"], 2)
    peak, lra = round(measured["input_tp"], 2), round(measured["input_lra"], 2)
    measured_all = peak != 99 and round(measured["input_thresh"], 2) != -70 and lra != 0 and (
        round(measured["input_i"], 2) != 0)
    return measured_all and peak + gain <= LOUDNESS["TP"] and lra <= LOUDNESS["LRA"]


def cover_filter() -> str:
    """Square pixels, then at most COVER_MAX_PIXELS on each side, never enlarged."""
    side = COVER_MAX_PIXELS
    return (f"scale=iw*sar:ih,setsar=1,scale=w='min({side},iw)':h='min({side},ih)'"
            ":force_original_aspect_ratio=decrease")


def plain(info, default_quality: int = 2) -> Plan:
    """The plan of an upload that asks for nothing: the whole audio at the default quality."""
    return make(info, Options(), default_quality)
