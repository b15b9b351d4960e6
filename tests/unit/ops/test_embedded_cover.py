"""The cover `ops migrate` takes out of an MP3 of an earlier release: read from the ID3 tag the
converter writes, and from nothing else."""

import pytest

from converter import id3
from converter.id3 import Chapter
from ops import embedded_cover

JPEG = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        b"\xff\xc0\x00\x11\x08\x01\x52\x02\x58\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xd9")
AUDIO = b"\xff\xfb\x90\x00" + b"\x00" * 400  # an MPEG frame header, then silence


def test_the_cover_the_converter_embeds_is_read_back_from_the_tag_alone():
    tag = id3.build("Évening Talk", "Ann", None, JPEG, [Chapter(0.0, 2.0, "Intro")])
    mp3 = tag + AUDIO
    assert embedded_cover.tag_size(mp3[:embedded_cover.HEADER_BYTES]) == len(tag)
    assert embedded_cover.read_cover(mp3[:len(tag)]) == JPEG


@pytest.mark.parametrize("data", [
    id3.build("only a title", None, None) + AUDIO,  # a tag without a picture
    AUDIO,  # no tag at all
    id3.build(None, None, None, JPEG)[:40],  # a tag cut short
    b"",
])
def test_no_cover_is_none(data):
    size = embedded_cover.tag_size(data[:embedded_cover.HEADER_BYTES])
    assert size == 0 or embedded_cover.read_cover(data[:size]) is None


def test_the_tag_size_counts_the_header_and_a_footer():
    header = b"ID3\x04\x00\x00" + bytes([0, 0, 0x02, 0x01])  # synchsafe 257
    assert embedded_cover.tag_size(header) == 10 + 257
    assert embedded_cover.tag_size(header[:5] + b"\x10" + header[6:]) == 10 + 257 + 10
    assert embedded_cover.tag_size(b"ID3") == 0
