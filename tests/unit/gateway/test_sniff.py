"""Upload sniffing recognises real media files by their first bytes and rejects the rest."""

import random
import subprocess

import pytest

from gateway.sniff import PROBE_BYTES, media_type
from tools.media import MANIFESTS, ffmpeg_exe, make_manifest

_AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1"]
_VIDEO = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=1"]
# file name -> (ffmpeg arguments, expected type)
EXTRA = {
    "tagged.mp3": (_AUDIO, "audio/mpeg"),
    "bare.mp3": ([*_AUDIO, "-id3v2_version", "0", "-write_xing", "0"], "audio/mpeg"),
    "sound.wav": (_AUDIO, "audio/wav"),
    "sound.flac": (_AUDIO, "audio/flac"),
    "sound.ogg": ([*_AUDIO, "-c:a", "libopus"], "audio/ogg"),
    "sound.aac": (_AUDIO, "audio/mpeg"),  # ADTS frames share MPEG audio's sync word
    "sound.m4a": (_AUDIO, "video/mp4"),
    "clip.avi": ([*_VIDEO, *_AUDIO], "video/x-msvideo"),
    "clip.ts": ([*_VIDEO, *_AUDIO], "video/mp2t"),
    "clip.flv": ([*_VIDEO, *_AUDIO], "video/x-flv"),
    "clip.wmv": ([*_VIDEO, *_AUDIO], "video/x-ms-asf"),
    "clip.mpg": ([*_VIDEO, *_AUDIO], "video/mpeg"),
}


def _head(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(PROBE_BYTES)


@pytest.fixture(scope="module")
def extra_media(tmp_path_factory):
    """Audio and video containers beyond the shared test media, made with ffmpeg."""
    directory = tmp_path_factory.mktemp("sniff")
    for name, (args, _expected) in EXTRA.items():
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *args, str(directory / name)],
                       check=True, capture_output=True, timeout=120)
    return directory


@pytest.mark.parametrize("kind, expected", [
    ("mp4_aac51", "video/mp4"), ("mkv_mp3", "video/x-matroska"),
    ("webm_opus", "video/x-matroska"), ("mov", "video/mp4"), ("no_audio", "video/mp4"),
])
def test_generated_videos_are_recognised(media, kind, expected):
    assert media_type(_head(media(kind))) == expected


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_other_containers_are_recognised(extra_media, name):
    assert media_type(_head(extra_media / name)) == EXTRA[name][1]


def test_text_is_rejected(media):
    assert media_type(_head(media("text"))) is None


@pytest.mark.parametrize("head", [
    b"", b"\x00", b"%PDF-1.7\n", b"<!DOCTYPE html><html>", b"PK\x03\x04zipped",
    b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"#!/bin/sh\necho hi\n",
], ids=["empty", "one byte", "pdf", "html", "zip", "png", "webp", "script"])
def test_non_media_is_rejected(head):
    assert media_type(head) is None


def test_random_bytes_are_rejected():
    rng = random.Random(20240601)
    heads = [rng.randbytes(PROBE_BYTES) for _ in range(50)]
    heads = [h for h in heads if h[0] not in (0x00, 0x1A, 0x47, 0xFF)]  # leave out magic starts
    assert heads and all(media_type(h) is None for h in heads)


@pytest.mark.parametrize("kind", MANIFESTS)
def test_playlists_and_manifests_are_refused(kind, tmp_path):
    """The text of an HLS, DASH (`<!--free-->` first, so bytes 4-8 read `free`), ffconcat or SDP
    file is text, whatever its first words imitate."""
    assert media_type(_head(make_manifest(kind, tmp_path))) is None


@pytest.mark.parametrize("head", [
    b"GET" + b" " * 185 + b"G" + b" " * 187 + b"G" + b" " * 100,  # MPEG-TS sync bytes, in text
    b"\xef\xbb\xbf<!--free--><MPD>",  # UTF-8 byte-order mark
    "<!--ftyp--> caf\u00e9 \u00e9t\u00e9 ".encode() * 300,  # cut inside a character at 4096
], ids=["ts-like", "bom", "utf8"])
def test_text_is_refused_whatever_it_imitates(head):
    assert media_type(head[:PROBE_BYTES]) is None


def _mpeg_frame(b1: int, b2: int) -> bytes:
    return bytes([0xFF, b1, b2, 0xC4]) + bytes(400)


@pytest.mark.parametrize("head, expected", [
    (b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4, "video/mp4"),  # any compatible brands
    (b"\x7f\xff\xff\xf0ftypisom" + bytes(64), None),  # a 2 GiB `ftyp` box
    (b"\x00\x00\x00\x08ftypisom" + bytes(64), None),  # too small to hold its brand
    (b"\x00\x00\x00\x16ftypisom" + bytes(64), None),  # not a whole number of brands
    (b"\x00\x00\x00\x18ftyp\x00\x01\x02\x03" + bytes(64), None),  # brand not printable
    (b"\x00\x00\x00\x08wide\x00\x10\x00\x00mdat" + bytes(64), "video/quicktime"),
    (b"\x00\x00\x00\x10free" + bytes(8) + b"\x00\x00\x01\x00moov" + bytes(64), "video/quicktime"),
    (b"\x00\x00\x00\x08free\x00\x00\x00\x10junk" + bytes(64), None),  # not a QuickTime box
    (b"\x00\x00\x00\x04mdat" + bytes(64), None),  # box smaller than its header
    (b"\x00\x10\x00\x00free" + bytes(64), None),  # chain leaves the head without moov/mdat
    (_mpeg_frame(0xFB, 0x90), "audio/mpeg"),  # MPEG-1 layer III, 128 kb/s, 44.1 kHz
    (_mpeg_frame(0xEB, 0x90), None),  # reserved MPEG version
    (_mpeg_frame(0xFB, 0xF0), None),  # bitrate index 15
    (_mpeg_frame(0xFB, 0x9C), None),  # sample-rate index 3
    (b"\xff\xf1\x50\x80\x2e\x7f\xfc" + bytes(400), "audio/mpeg"),  # ADTS, 44.1 kHz
    (b"\xff\xf1\x74\x80\x2e\x7f\xfc" + bytes(400), None),  # ADTS, reserved sampling index 13
    (b"\x47" + bytes(187) + b"\x47" + bytes(187) + b"\x47" + bytes(100), "video/mp2t"),
    (b"\x47" + bytes(187) + b"\x47" + bytes(187) + b"\x00" + bytes(100), None),
    (b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(64), None),  # RIFF of size 0
    (b"RIFF\x24\x00\x00\x00WAVE\x00\x00\x00\x00" + bytes(64), None),  # no chunk after the form
    (b"OggS\x00\x00" + bytes(64), None),  # first page not flagged beginning-of-stream
    (b"fLaC\x04\x00\x00\x22" + bytes(64), None),  # first block not STREAMINFO
    (b"\x1a\x45\xdf\xa3\x9f" + bytes(64), None),  # EBML without a Matroska/WebM DocType
    (b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(16) + b"#EXTM3U\n#EXT-X-ENDLIST\n", None),
    (b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(16) + _mpeg_frame(0xFB, 0x90), "audio/mpeg"),
    (b"ID3\x04\x00\x00\x00\x00\x80\x10" + bytes(64), None),  # size not syncsafe
    (b"FLV\x01\x05\x00\x00\x00\x09" + bytes(64), "video/x-flv"),
    (b"FLV\x01\x05\x00\x00\x00\x00" + bytes(64), None),  # header size 0
])
def test_containers_are_recognised_by_their_structure(head, expected):
    assert media_type(head) == expected
