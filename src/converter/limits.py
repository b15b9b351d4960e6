"""What one conversion may cost, and the words that tell a person it cost too much."""

from dataclasses import dataclass

MIB = 1 << 20
_UNITS = ((3600, "hour"), (60, "minute"), (1, "second"))


@dataclass(frozen=True)
class Limits:
    """Caps on a conversion; the defaults let a 3-hour 720p video through on a 2-core machine.

    Measured with the imageio-ffmpeg binary: converting 600 s of 720p H.264 with stereo AAC
    took 10.7 s of processor time (so about 190 s for 3 hours) and 40 MiB of memory; 3 hours
    of 25 fps MP4 needed at least 384 MiB of address space (88 MiB resident, for the index).
    """

    media_seconds: float = 10800.0  # MAX_MEDIA_SECONDS: longest input accepted
    cpu_seconds: int = 1200  # FFMPEG_CPU_SECONDS: processor time of one ffmpeg run (6x)
    memory_bytes: int = 768 * MIB  # FFMPEG_MEMORY_BYTES: address space of one run (2x)
    mp3_bytes: int = 512 * MIB  # MAX_MP3_BYTES: 3 hours at 320 kb/s is 412 MiB


DEFAULT_LIMITS = Limits()


def _amount(seconds: float) -> tuple[str, str]:
    """(number, unit) in the largest unit that divides ``seconds`` evenly."""
    for size, unit in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}", unit
    return f"{seconds:g}", "second"


def span(seconds: float) -> str:
    """A length as a noun: "3 hours", "90 minutes", "1 second", "2.5 seconds"."""
    number, unit = _amount(seconds)
    return f"{number} {unit}" + ("" if number == "1" else "s")


def span_adjective(seconds: float) -> str:
    """A length as an adjective: "3-hour", "90-minute", "45-second"."""
    number, unit = _amount(seconds)
    return f"{number}-{unit}"


def too_long(limits: Limits) -> str:
    """The reason given for an input longer than the limit."""
    return f"the video is longer than the {span_adjective(limits.media_seconds)} limit"
