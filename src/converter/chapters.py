"""The source's chapters, from the ffmetadata file ffmpeg writes, fitted to the MP3."""

from __future__ import annotations

from fractions import Fraction

from common.options import clean_text
from converter.id3 import Chapter

MAX_CHAPTERS = 256
TITLE_MAX_CHARS = 200
_ESCAPED = "=;#\\\n"  # ffmetadata puts a backslash before each of these in a value


def parse(text: str) -> list[Chapter]:
    """The [CHAPTER] sections of an ffmetadata file, in seconds, as ffmpeg wrote them."""
    chapters: list[Chapter] = []
    for section in _sections(text):
        if section.get("") != "CHAPTER":
            continue
        try:
            base = Fraction(section.get("TIMEBASE", "1/1000"))
            start = float(int(section["START"]) * base)
            end = float(int(section["END"]) * base)
        except (KeyError, ValueError, ZeroDivisionError):
            continue
        title = clean_text(section.get("title", "")).strip()
        chapters.append(Chapter(start, end, title[:TITLE_MAX_CHARS] or None))
    return chapters


def fit(chapters: list[Chapter], duration: float) -> list[Chapter]:
    """The chapters within an MP3 of ``duration`` seconds, in order, at most MAX_CHAPTERS."""
    kept = [Chapter(max(0.0, c.start), min(c.end, duration), c.title)
            for c in sorted(chapters, key=lambda c: c.start)
            if c.start < duration and c.end > max(0.0, c.start)]
    return kept[:MAX_CHAPTERS]


def _sections(text: str):
    """Each section of key=value lines as a dict; key "" holds the section's name."""
    section: dict[str, str] = {"": ""}
    for line in _lines(text):
        if line.startswith("[") and line.endswith("]"):
            yield section
            section = {"": line[1:-1]}
        elif line and not line.startswith((";", "#")):
            key, _, value = _split(line)
            section.setdefault(key, value)
    yield section


def _lines(text: str):
    """Logical lines: an escaped newline continues the value."""
    current, escaped = [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "\n":
            yield "".join(current)
            current = []
        else:
            current.append(ch)
    if current:
        yield "".join(current)


def _split(line: str) -> tuple[str, str, str]:
    """key, "=", value, with the escapes of both undone."""
    parts, current, i = [], [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] in _ESCAPED:
            current.append(line[i + 1])
            i += 2
            continue
        if line[i] == "=" and not parts:
            parts.append("".join(current))
            current = []
        else:
            current.append(line[i])
        i += 1
    if not parts:
        return "".join(current), "", ""
    return parts[0], "=", "".join(current)
