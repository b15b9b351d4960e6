"""The cover picture ffmpeg extracted: read it back and tell its size."""

from __future__ import annotations

import os

MAX_COVER_BYTES = 2 << 20  # a 600 px JPEG is tens of kilobytes
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def read(path: str) -> bytes | None:
    """The JPEG at ``path`` when ffmpeg made one that can be embedded, else None."""
    try:
        if not 0 < os.path.getsize(path) <= MAX_COVER_BYTES:
            return None
        with open(path, "rb") as src:
            data = src.read()
    except FileNotFoundError:
        return None
    return data if dimensions(data) else None


def dimensions(jpeg: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame marker; None when it is not a JPEG."""
    if jpeg[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(jpeg):
        if jpeg[i] != 0xFF:
            return None
        marker, length = jpeg[i + 1], int.from_bytes(jpeg[i + 2:i + 4], "big")
        if marker in _SOF and i + 9 <= len(jpeg):
            height = int.from_bytes(jpeg[i + 5:i + 7], "big")
            width = int.from_bytes(jpeg[i + 7:i + 9], "big")
            return (width, height) if width and height else None
        i += 2 + length
    return None
