"""The front cover embedded in a stored MP3's ID3 tag, for ``python -m ops migrate``: earlier
releases kept a job's cover only there (the converter writes the tag, ``converter.id3``).

Only the tag at the MP3's start is read, MAX_TAG_BYTES at most (its size comes from its 10-byte
header), never the audio after it.
"""

from __future__ import annotations

import io

from mutagen import MutagenError
from mutagen.id3 import ID3, ID3NoHeaderError, PictureType

from common.gridio import FileMissing
from common.store import MP3S, Store

HEADER_BYTES = 10
MAX_TAG_BYTES = 4 << 20  # a tag this service writes is far smaller (a cover of 600 px)


def read(store: Store, mp3_fid) -> bytes | None:
    """The JPEG front cover in the tag of the stored MP3 ``mp3_fid``; None when the MP3 is gone
    or incomplete, or its tag has none."""
    try:
        with store.open_download(MP3S, mp3_fid) as mp3:
            head = mp3.read(HEADER_BYTES)
            length = tag_size(head)
            if not length:
                return None
            return read_cover(head + mp3.read(min(length, MAX_TAG_BYTES) - len(head)))
    except (FileMissing, OSError):  # deleted meanwhile, or a chunk missing
        return None


def tag_size(header: bytes) -> int:
    """How many bytes the tag at the start of a file takes, from its 10-byte header (0: none)."""
    if len(header) < HEADER_BYTES or header[:3] != b"ID3":
        return 0
    size = 0
    for byte in header[6:10]:
        size = (size << 7) | (byte & 0x7F)  # "synchsafe": 7 bits per byte
    return HEADER_BYTES + size + (HEADER_BYTES if header[5] & 0x10 else 0)  # + footer


def read_cover(tag_bytes: bytes) -> bytes | None:
    """The front cover's JPEG in a tag's bytes, if it has one."""
    try:
        tag = ID3(io.BytesIO(tag_bytes))
    except (ID3NoHeaderError, MutagenError, ValueError):  # none, or cut short
        return None
    for frame in tag.getall("APIC"):
        if frame.type == PictureType.COVER_FRONT and frame.mime == "image/jpeg":
            return frame.data
    return None
