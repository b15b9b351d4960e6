"""A conversion's options: what an upload may ask for, checked once, stored with its job.

The gateway parses each of the upload's form fields as it arrives (``parse_field``) and
combines them (``combine``; ``from_fields`` does both), the job record keeps them (``to_doc``),
the converter follows them (``from_doc``, ``QUALITIES``) and ``GET /jobs/<id>`` shows them.
Every field is optional; the defaults reproduce a plain conversion.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class Quality:
    """One MP3 quality an upload may ask for: what it means, and how ffmpeg makes it."""

    label: str
    ffmpeg_args: tuple[str, ...]  # the encoder's: LAME's -V scale (VBR) or a bitrate (CBR)


# quality -> what it is; None (not given): the service's default VBR quality (MP3_QUALITY), and
# an MP3 source's own audio frames, copied as they are.
QUALITIES = {
    "v0": Quality("VBR V0 (about 245 kbit/s)", ("-q:a", "0")),
    "v2": Quality("VBR V2 (about 190 kbit/s)", ("-q:a", "2")),
    "v5": Quality("VBR V5 (about 130 kbit/s)", ("-q:a", "5")),
    "128": Quality("CBR 128 kbit/s", ("-b:a", "128k")),
    "192": Quality("CBR 192 kbit/s", ("-b:a", "192k")),
    "256": Quality("CBR 256 kbit/s", ("-b:a", "256k")),
    "320": Quality("CBR 320 kbit/s", ("-b:a", "320k")),
}
COVERS = ("auto", "none")
TAGS = ("title", "artist", "album")
FIELDS = ("quality", "start", "end", "normalize", *TAGS, "cover")
TAG_MAX_CHARS = 200
MAX_SECONDS = 100 * 3600  # a trim point beyond any media the service accepts
MAX_FIELD_BYTES = 1024  # one option's value, as sent
MIN_TRIM_SECONDS = 0.1  # the least a trim may keep: a few MP3 frames
# Characters no text of ours holds: controls, surrogates, line and paragraph separators, and
# the bidirectional formatting characters that make text display as something else (the
# embeddings LRE, RLE, PDF, the overrides LRO, RLO and the isolates LRI, RLI, FSI, PDI).
# Joiners, direction marks (LRM, RLM, ALM) and every kind of space are ordinary parts of
# writing and stay.
_NOT_TEXT = ("Cc", "Cs", "Zl", "Zp")
_BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_TRUE = ("true", "1", "on", "yes")
_FALSE = ("false", "0", "off", "no")
_CLOCK = re.compile(r"^(?:(\d{1,9}):)?([0-5]?\d):([0-5]?\d(?:\.\d{1,3})?)$", re.ASCII)
_SECONDS = re.compile(r"^\d{1,12}(?:\.\d{1,3})?$", re.ASCII)


class InvalidOption(ValueError):
    """An option's value, or a combination of them, cannot be used; the message says why."""


@dataclass(frozen=True)
class Options:
    """How one upload is to be converted."""

    quality: str | None = None  # a key of QUALITIES; None: the default (see QUALITIES)
    start: float | None = None  # seconds into the media where the MP3 begins
    end: float | None = None  # seconds into the media where it ends
    normalize: bool = False  # level loudness to EBU R128 (-16 LUFS, -1.5 dBTP), two passes
    title: str | None = None  # ID3 tags; the title defaults to the upload's file stem
    artist: str | None = None
    album: str | None = None
    cover: str = "auto"  # "auto": a frame of the video as the front cover; "none"

    @property
    def reencodes(self) -> bool:
        """Something asks for new audio frames: an MP3 source is then not copied."""
        return self.quality is not None or self.normalize

    def to_doc(self) -> dict:
        """The JSON/BSON form kept in the job record and shown by the API."""
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict | None, filename: str | None = None) -> Options:
        """The options of a job record (one recorded before options existed: the defaults)."""
        if not doc:
            return cls(title=default_title(filename))
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in doc.items() if key in names})


def default_title(filename: str | None) -> str | None:
    """The upload's file name without its extension."""
    stem = PurePath(filename or "").stem.strip()
    return stem[:TAG_MAX_CHARS] or None


def parse_field(name: str, value: bytes | str) -> object:
    """One form field parsed, its value as sent (bytes: at most MAX_FIELD_BYTES of UTF-8) or
    as text; InvalidOption naming the field when it is no option or its value is wrong.

    An empty value means "not given" (None; a browser form sends its empty inputs).
    """
    if name not in FIELDS:
        raise InvalidOption(f"unknown field '{name[:40]}': the upload's fields are file, "
                            + ", ".join(FIELDS))
    if isinstance(value, bytes):
        if len(value) > MAX_FIELD_BYTES:
            raise InvalidOption(f"{name} is longer than {MAX_FIELD_BYTES} bytes")
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidOption(f"{name} must be UTF-8 text") from None
    value = value.strip()
    if not value:
        return None
    if name == "quality":
        if value.lower() not in QUALITIES:
            raise InvalidOption("quality must be one of " + ", ".join(QUALITIES)
                                + " (v0/v2/v5: variable bitrate; numbers: constant kbit/s)")
        return value.lower()
    if name in ("start", "end"):
        return parse_time(name, value)
    if name == "normalize":
        if value.lower() not in _TRUE + _FALSE:
            raise InvalidOption("normalize must be true or false")
        return value.lower() in _TRUE
    if name == "cover":
        if value.lower() not in COVERS:
            raise InvalidOption("cover must be auto (a frame of the video) or none")
        return value.lower()
    if len(value) > TAG_MAX_CHARS:
        raise InvalidOption(f"{name} is longer than {TAG_MAX_CHARS} characters")
    if not is_text(value):
        raise InvalidOption(f"{name} must be plain text without control characters")
    return value


def is_text(value: str) -> bool:
    """Plain text: nothing of _NOT_TEXT or _BIDI_CONTROLS."""
    return all(unicodedata.category(ch) not in _NOT_TEXT and ch not in _BIDI_CONTROLS
               for ch in value)


def clean_text(value: str) -> str:
    """``value`` without what is_text refuses."""
    return "".join(ch for ch in value if is_text(ch))


def parse_time(name: str, text: str) -> float:
    """A point in the media: seconds ("90", "90.5") or a clock time ("1:30", "00:01:30.250")."""
    text = text.strip()
    if _SECONDS.match(text):
        seconds = float(text)
    elif match := _CLOCK.match(text):
        hours, minutes, secs = match.groups()
        seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
    else:
        raise InvalidOption(f"{name} must be seconds (90 or 90.5) or a time (1:30 or "
                            "00:01:30.250), with at most 3 decimals")
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise InvalidOption(f"{name} is beyond {MAX_SECONDS // 3600} hours")
    return round(seconds, 3)


def from_fields(fields: dict[str, bytes | str], filename: str | None) -> Options:
    """The options of an upload from its form fields (each parsed), or InvalidOption."""
    return combine({name: parse_field(name, value) for name, value in fields.items()}, filename)


def combine(parsed: dict[str, object], filename: str | None) -> Options:
    """The options of an upload from its fields as ``parse_field`` gave them: InvalidOption
    when they do not go together (a trim that ends before it starts, or keeps too little)."""
    values = {name: value for name, value in parsed.items() if value is not None}
    start, end = values.get("start"), values.get("end")
    if start is not None and end is not None and end <= start:
        raise InvalidOption(f"end ({clock(end)}) must be after start ({clock(start)})")
    if end is not None and end - (start or 0) < MIN_TRIM_SECONDS:
        raise InvalidOption(f"the trim keeps less than {MIN_TRIM_SECONDS:g} s: end must be at "
                            f"least {MIN_TRIM_SECONDS:g} s after "
                            + ("start" if start else "the beginning of the media"))
    if start == 0:
        values.pop("start")  # the beginning: no trim
    values.setdefault("title", default_title(filename))
    return Options(**values)


def clock(seconds: float) -> str:
    """A point in the media as people write it: "0:01:30.250", "1:00:00"."""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    return text + (f".{millis:03d}" if millis else "")
