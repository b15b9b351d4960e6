"""The MP3's tag: chapters read from ffmpeg's ffmetadata, the ID3v2.4 frames, the cover's size."""

import io

import pytest
from mutagen.id3 import ID3, PictureType

from converter import chapters, cover, id3
from converter.id3 import Chapter

# What ffmpeg writes for a source with two chapters, the second titled with every character
# ffmetadata escapes, and a newline trying to start a third chapter of its own.
FFMETADATA = (";FFMETADATA1\ntitle=Source\n"
              "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=4000\ntitle=Intro\n"
              "[CHAPTER]\nTIMEBASE=1/1000000000\nSTART=4000000000\nEND=9500000000\n"
              "title=a\\=b\\;c\\#d\\\\e\\\n[CHAPTER]\n")
JPEG_600x338 = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
                b"\xff\xc0\x00\x11\x08\x01\x52\x02\x58\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
                b"\xff\xd9")


def test_chapters_are_read_with_ffmetadata_escapes_undone():
    assert chapters.parse(FFMETADATA) == [
        Chapter(0.0, 4.0, "Intro"),
        Chapter(4.0, 9.5, "a=b;c#d\\e[CHAPTER]"),  # the escaped newline is dropped, not a section
    ]


def test_chapters_are_fitted_to_a_trimmed_mp3():
    found = [Chapter(6.0, 12.0, "c"), Chapter(0.0, 2.0, "a"), Chapter(2.0, 6.0, "b"),
             Chapter(9.0, 9.0, "empty")]
    assert chapters.fit(found, 7.5) == [Chapter(0.0, 2.0, "a"), Chapter(2.0, 6.0, "b"),
                                        Chapter(6.0, 7.5, "c")]
    assert len(chapters.fit([Chapter(i, i + 1, None) for i in range(1000)], 2000.0)) == 256


def test_malformed_chapters_are_skipped():
    text = "[CHAPTER]\nTIMEBASE=1/0\nSTART=0\nEND=1\n[CHAPTER]\nSTART=x\nEND=1\n"
    assert chapters.parse(text) == []


def test_the_tag_is_id3v24_utf8_with_front_cover_and_chapters():
    data = id3.build("Évening Talk", "Ann — 夜", "Live", JPEG_600x338,
                     [Chapter(0.0, 2.0, "Intro"), Chapter(2.0, 7.5, None)])
    tag = ID3(io.BytesIO(data))
    assert tag.version == (2, 4, 0) and tag.size == len(data)  # no padding
    assert (str(tag["TIT2"]), str(tag["TPE1"]), str(tag["TALB"])) == (
        "Évening Talk", "Ann — 夜", "Live")
    assert all(tag[name].encoding == 3 for name in ("TIT2", "TPE1", "TALB"))  # UTF-8
    (picture,) = tag.getall("APIC")
    assert (picture.type, picture.mime, picture.data) == (
        PictureType.COVER_FRONT, "image/jpeg", JPEG_600x338)
    (toc,) = tag.getall("CTOC")
    assert toc.child_element_ids == ["ch0", "ch1"]
    first, second = (tag[f"CHAP:{cid}"] for cid in toc.child_element_ids)
    assert (first.start_time, first.end_time, str(first.sub_frames["TIT2"])) == (0, 2000, "Intro")
    assert (second.start_time, second.end_time, dict(second.sub_frames)) == (2000, 7500, {})


def test_nothing_to_say_is_no_tag():
    assert id3.build(None, None, None) == b""
    assert ID3(io.BytesIO(id3.build("only a title", None, None))).getall("APIC") == []


@pytest.mark.parametrize("data, size", [(JPEG_600x338, (600, 338)), (b"\x89PNG\r\n", None),
                                        (b"\xff\xd8\xff\xe0\x00\x02", None), (b"", None)])
def test_the_cover_size_comes_from_the_jpeg_frame_header(data, size):
    assert cover.dimensions(data) == size
