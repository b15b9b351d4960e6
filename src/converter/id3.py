"""The MP3's ID3v2.4 tag, written in front of ffmpeg's audio frames: text tags, the front
cover, chapters (built with mutagen; ffmpeg writes none)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from mutagen.id3 import (
    APIC,
    CHAP,
    CTOC,
    ID3,
    TALB,
    TIT2,
    TPE1,
    CTOCFlags,
    Encoding,
    PictureType,
)

TOC_ID = "toc"


@dataclass(frozen=True)
class Chapter:
    """A chapter of the MP3, in seconds from its beginning."""

    start: float
    end: float
    title: str | None


def build(title: str | None, artist: str | None, album: str | None,
          cover: bytes | None = None, chapters: list[Chapter] = ()) -> bytes:
    """The tag's bytes: UTF-8 text frames, the JPEG cover as front cover, CHAP/CTOC frames."""
    tag = ID3()
    for frame, text in ((TIT2, title), (TPE1, artist), (TALB, album)):
        if text:
            tag.add(frame(encoding=Encoding.UTF8, text=[text]))
    if cover:
        tag.add(APIC(encoding=Encoding.UTF8, mime="image/jpeg", type=PictureType.COVER_FRONT,
                     desc="", data=cover))
    ids = [f"ch{index}" for index in range(len(chapters))]
    for element_id, chapter in zip(ids, chapters, strict=True):
        sub_frames = [TIT2(encoding=Encoding.UTF8, text=[chapter.title])] if chapter.title else []
        tag.add(CHAP(element_id=element_id, start_time=round(chapter.start * 1000),
                     end_time=round(chapter.end * 1000), sub_frames=sub_frames))
    if ids:
        tag.add(CTOC(element_id=TOC_ID, flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                     child_element_ids=ids, sub_frames=[]))
    if not tag:
        return b""
    out = io.BytesIO()
    tag.save(out, v2_version=4, padding=lambda _info: 0)
    return out.getvalue()
