"""Upload sniffing recognises real media files by their first bytes and rejects the rest."""

import random
import subprocess

import pytest

from gateway.sniff import PROBE_BYTES, media_type
from tools.media import ffmpeg_exe

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
