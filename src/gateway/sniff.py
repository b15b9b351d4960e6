"""Recognise audio/video containers from their first bytes."""

PROBE_BYTES = 4096

_SIGNATURES = (
    (0, b"\x1a\x45\xdf\xa3", "video/x-matroska"),  # Matroska / WebM (EBML)
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"FLV", "video/x-flv"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "video/x-ms-asf"),  # WMV / WMA
    (0, b"\x00\x00\x01\xba", "video/mpeg"),  # MPEG program stream
    (0, b"\x00\x00\x01\xb3", "video/mpeg"),
    (0, b"#!AMR", "audio/amr"),
    (0, b".RMF", "application/vnd.rn-realmedia"),
    (4, b"ftyp", "video/mp4"),  # MP4, MOV, M4A, 3GP
    (4, b"moov", "video/quicktime"),
    (4, b"mdat", "video/quicktime"),
    (4, b"free", "video/quicktime"),
    (4, b"wide", "video/quicktime"),
)


def media_type(head: bytes) -> str | None:
    """The container's MIME type when ``head`` looks like audio or video, else None."""
    for offset, magic, mime in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return mime
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"WAVE"):
        return "video/x-msvideo" if head[8:12] == b"AVI " else "audio/wav"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "audio/mpeg"  # MPEG audio frame sync (MP3 / ADTS AAC)
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return "video/mp2t"  # MPEG transport stream
    return None
