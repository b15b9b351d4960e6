"""Recognise audio/video containers by the structure of their first bytes; refuse text.

The first line of defence only: the converter's ffmpeg demuxes nothing but these containers.
"""

import struct

PROBE_BYTES = 4096
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_QUICKTIME_BOXES = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_TEXT_CONTROLS = set(b"\t\n\r\f\v")


def _be32(head: bytes, at: int) -> int:
    return struct.unpack_from(">I", head, at)[0] if len(head) >= at + 4 else -1


def _printable(data: bytes) -> bool:
    return len(data) == 4 and all(0x20 <= c < 0x7F for c in data)


def _ftyp(head: bytes) -> bool:
    """ISO-BMFF (MP4, MOV, M4A, 3GP): a whole `ftyp` box of sane size with a printable brand."""
    size = _be32(head, 0)
    return 16 <= size <= PROBE_BYTES and size % 4 == 0 and _printable(head[8:12])


def _quicktime(head: bytes) -> bool:
    """Legacy QuickTime: top-level boxes chained from offset 0 up to a `moov` or `mdat`."""
    offset = 0
    while offset + 8 <= len(head):
        size, kind = _be32(head, offset), head[offset + 4:offset + 8]
        if kind not in _QUICKTIME_BOXES:
            return False
        if kind in (b"moov", b"mdat"):
            return size in (0, 1) or size >= 8  # 0: to the end of the file, 1: 64-bit size
        if size < 8:
            return False
        offset += size
    return False


def _ebml(head: bytes) -> bool:
    """Matroska / WebM: the EBML header names its DocType."""
    start = head[4:64]
    return b"\x42\x82" in start and (b"matroska" in start or b"webm" in start)


def _ogg(head: bytes) -> bool:
    """Ogg: stream structure version 0, first page flagged beginning-of-stream."""
    return head[4:6] == b"\x00\x02"


def _flac(head: bytes) -> bool:
    """FLAC: the first metadata block is a 34-byte STREAMINFO."""
    return len(head) >= 8 and head[4] & 0x7F == 0 and head[5:8] == b"\x00\x00\x22"


def _id3(head: bytes) -> bool:
    """An ID3v2 tag (version 2-4, syncsafe size) then, if it ends within the head, audio."""
    if len(head) < 10 or head[3] not in (2, 3, 4) or head[4] == 0xFF or head[5] & 0x0F:
        return False
    if any(c & 0x80 for c in head[6:10]):
        return False
    end = 10 + sum(c << shift for c, shift in zip(head[6:10], (21, 14, 7, 0), strict=True))
    rest = head[end:].lstrip(b"\x00")
    return not rest or _mpeg_audio(rest) or rest.startswith((b"fLaC", b"ID3"))


def _mpeg_audio(head: bytes) -> bool:
    """An MPEG audio frame header (MP3, MP2) or an ADTS AAC header, with no reserved value."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = head[1] >> 3 & 3, head[1] >> 1 & 3
    if layer == 0:  # ADTS: 12-bit sync, sampling index 0-12, a frame longer than its header
        if len(head) < 6 or head[1] & 0xF0 != 0xF0:
            return False
        length = (head[3] & 3) << 11 | head[4] << 3 | head[5] >> 5
        return head[2] >> 2 & 0xF <= 12 and length > 7
    # MPEG-1, -2 or -2.5 (01 is reserved); bitrate index 15 and sample-rate index 3 are invalid
    return version != 1 and head[2] >> 4 != 15 and head[2] >> 2 & 3 != 3


def _mpeg_ts(head: bytes) -> bool:
    """MPEG transport stream: a sync byte every 188 bytes (at 0, 188, 376 when present)."""
    return len(head) >= 189 and all(head[i] == 0x47 for i in range(0, min(len(head), 377), 188))


def _mpeg_ps(head: bytes) -> bool:
    """MPEG program stream: a pack header of MPEG-1 (0010) or MPEG-2 (01) form."""
    return len(head) > 4 and (head[4] >> 6 == 1 or head[4] >> 4 == 2)


def _riff(form: bytes):
    def check(head: bytes) -> bool:
        """RIFF of this form, sane size, then a chunk with a printable name."""
        size = struct.unpack_from("<I", head, 4)[0] if len(head) >= 8 else 0
        return head[8:12] == form and size >= 12 and _printable(head[12:16])

    return check


def _flv(head: bytes) -> bool:
    """FLV version 1: only the audio/video flag bits set, a header of at least 9 bytes."""
    return len(head) >= 9 and head[3] == 1 and head[4] & 0xFA == 0 and _be32(head, 5) >= 9


def _asf(head: bytes) -> bool:
    """ASF (WMV, WMA): the header object's GUID and a size that can hold it."""
    return len(head) >= 24 and struct.unpack_from("<Q", head, 16)[0] >= 30


def _amr(head: bytes) -> bool:
    return head.startswith((b"#!AMR\n", b"#!AMR-WB\n"))


def _realmedia(head: bytes) -> bool:
    """RealMedia: the .RMF header chunk's size and version."""
    return _be32(head, 4) >= 18 and head[8:10] in (b"\x00\x00", b"\x00\x01")


# (offset, magic, MIME type, check of the structure around it), tried in order.
_CONTAINERS = (
    (4, b"ftyp", "video/mp4", _ftyp),
    *((4, box, "video/quicktime", _quicktime) for box in sorted(_QUICKTIME_BOXES)),
    (0, b"\x1a\x45\xdf\xa3", "video/x-matroska", _ebml),
    (0, b"OggS", "audio/ogg", _ogg),
    (0, b"fLaC", "audio/flac", _flac),
    (0, b"ID3", "audio/mpeg", _id3),
    (0, b"\xff", "audio/mpeg", _mpeg_audio),
    (0, b"\x47", "video/mp2t", _mpeg_ts),
    (0, b"\x00\x00\x01\xba", "video/mpeg", _mpeg_ps),
    (0, b"RIFF", "audio/wav", _riff(b"WAVE")),
    (0, b"RIFF", "video/x-msvideo", _riff(b"AVI ")),
    (0, b"FLV", "video/x-flv", _flv),
    (0, _ASF_GUID, "video/x-ms-asf", _asf),
    (0, b"#!AMR", "audio/amr", _amr),
    (0, b".RMF", "application/vnd.rn-realmedia", _realmedia),
)


def is_text(head: bytes) -> bool:
    """The bytes read as UTF-8 text (a character cut at the end allowed) with no binary."""
    for cut in range(4):
        try:
            text = head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return all(ch.isprintable() or ord(ch) in _TEXT_CONTROLS for ch in text)
    return False


def media_type(head: bytes) -> str | None:
    """The container's MIME type when ``head`` is the start of audio or video, else None."""
    if not head or is_text(head):
        return None
    for offset, magic, mime, check in _CONTAINERS:
        if head[offset:offset + len(magic)] == magic and check(head):
            return mime
    return None
