"""The streaming multipart reader (gateway.multipart) alone, no server: the events of crafted
bodies, whatever pieces they arrive in, and the bodies it refuses."""


import pytest
from werkzeug.exceptions import RequestEntityTooLarge

from gateway import multipart
from tests.unit.gateway.conftest import Pieces

BOUNDARY = b"b0undary-Xy3"
MAX_FIELD = 64


def part(name: str | None, content: bytes, filename: str | None = None,
         content_type: str | None = "video/mp4") -> bytes:
    disposition = "form-data" if name is None else f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    headers = b"Content-Disposition: " + disposition.encode("utf-8") + b"\r\n"
    if content_type is not None:
        headers += b"Content-Type: " + content_type.encode() + b"\r\n"
    return b"--" + BOUNDARY + b"\r\n" + headers + b"\r\n" + content + b"\r\n"


def body(*parts: bytes, end: bool = True) -> bytes:
    return b"".join(parts) + (b"--" + BOUNDARY + b"--\r\n" if end else b"")


def events(data: bytes | Pieces, max_bytes: int = 10**9, max_field: int = MAX_FIELD) -> list:
    """The reader's events, each file's chunks joined: ("field", name, value) and
    ("file", name, filename, content type, data)."""
    stream = data if isinstance(data, Pieces) else Pieces(data)
    found, last = [], True
    for event in multipart.read(stream, BOUNDARY, max_bytes, max_field):
        if isinstance(event, multipart.Chunk):
            assert not last, "a chunk after the file's last one"
            found[-1] = (*found[-1][:-1], found[-1][-1] + event.data)
            last = event.last
            continue
        assert last, "the file before this event never had its last chunk"
        if isinstance(event, multipart.Field):
            found.append(("field", event.name, event.value))
        else:
            found.append(("file", event.name, event.filename, event.content_type, b""))
            last = False
    assert last, "the body ended before the file's last chunk"
    return found


VIDEO = bytes(range(256)) * 40 + b"\r\n--b0undary-X" + b"\r\n\r\n--" + bytes(100)  # look-alikes
FORM = body(part("title", "Ünïcode".encode()), part("file", VIDEO, "a.mp4"),
            part("quality", b"320"))
EXPECTED = [("field", "title", "Ünïcode".encode()),
            ("file", "file", "a.mp4", "video/mp4", VIDEO),
            ("field", "quality", b"320")]


def test_fields_and_the_file_come_in_order_with_the_files_name_and_type():
    assert events(FORM) == EXPECTED


def test_a_body_split_in_two_at_every_byte_reads_the_same():
    for at in range(1, len(FORM)):
        assert events(Pieces(FORM, [at])) == EXPECTED, f"split at byte {at}"


def test_a_body_read_a_byte_at_a_time_reads_the_same():
    assert events(Pieces(FORM, [1] * len(FORM))) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(BOUNDARY) + 10))
@pytest.mark.parametrize("after", ["the rest at once", "a byte at a time"])
def test_a_closing_delimiter_cut_anywhere_is_still_found(cut, after):
    """werkzeug 3.1 takes a closing delimiter cut before its last "-" (the rest, "-\r\n",
    in the next read) for file data, a "\r" more: the reader holds the body's last bytes back
    until the end."""
    data = body(part("file", VIDEO, "a.mp4"))
    sizes = [len(data) - cut] + ([1] * cut if after == "a byte at a time" else [])
    assert events(Pieces(data, sizes)) == [("file", "file", "a.mp4", "video/mp4", VIDEO)]


def test_two_files_are_two_files():
    data = body(part("file", b"first", "a.mp4"),
                part("other", b"second", "b.mov", "video/quicktime"))
    assert events(Pieces(data, [7] * 100)) == [
        ("file", "file", "a.mp4", "video/mp4", b"first"),
        ("file", "other", "b.mov", "video/quicktime", b"second")]


def test_a_field_named_file_without_a_filename_is_a_text_field():
    assert events(body(part("file", b"video.mp4"))) == [("field", "file", b"video.mp4")]


def test_an_empty_file_has_one_empty_last_chunk_and_an_empty_field_an_empty_value():
    found = list(multipart.read(Pieces(body(part("file", b"", "a.mp4"), part("title", b""))),
                                BOUNDARY, 10**6, MAX_FIELD))
    assert found == [multipart.File("file", "a.mp4", "video/mp4"),
                     multipart.Chunk(b"", last=True), multipart.Field("title", b"")]


def test_a_file_without_a_type_is_octet_stream_and_a_part_without_a_name_is_named_empty():
    data = body(part("file", b"x", "a.bin", content_type=None), part(None, b"v"))
    assert events(data) == [("file", "file", "a.bin", "application/octet-stream", b"x"),
                            ("field", "", b"v")]


def test_a_long_field_gives_its_first_bytes_as_soon_as_they_came_and_the_rest_is_skipped():
    data = body(part("title", b"t" * 100_000), part("end", b"90"))
    stream = Pieces(data, [32] * 10_000)
    reader = multipart.read(stream, BOUNDARY, 10**6, MAX_FIELD)
    assert next(reader) == multipart.Field("title", b"t" * (MAX_FIELD + 1))
    assert stream.at < 2048  # refused by its length, it is not read on
    assert list(reader) == [multipart.Field("end", b"90")]


def test_a_field_of_exactly_the_most_bytes_is_given_whole():
    assert events(body(part("title", b"t" * MAX_FIELD))) == [("field", "title", b"t" * MAX_FIELD)]


def test_the_preamble_and_the_epilogue_are_skipped():
    data = b"a preamble\r\n" + body(part("end", b"1:30")) + b"an epilogue"
    assert events(data) == [("field", "end", b"1:30")]


@pytest.mark.parametrize("data", [
    body(part("file", VIDEO, "a.mp4"), end=False),  # no closing delimiter
    body(part("file", VIDEO, "a.mp4"))[:-30],  # cut inside the file
    b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--" + BOUNDARY + b"--\r\n",
    b"",
], ids=["unterminated", "cut short", "no content-disposition", "empty"])
def test_a_malformed_body_is_400(data):
    with pytest.raises(multipart.Unreadable) as refused:
        events(Pieces(data, [4096] * 100))
    assert refused.value.status == 400
    assert str(refused.value).startswith("malformed multipart body: ")


def test_more_than_max_bytes_is_413_whatever_the_parts():
    """A chunked body has no Content-Length: here a preamble, which the parser skips."""
    data = b"junk\r\n" * 50_000 + body(part("file", b"x", "a.mp4"))
    stream = Pieces(data, [1000] * 1000)
    with pytest.raises(multipart.Unreadable, match="^file too large$") as refused:
        events(stream, max_bytes=100_000)
    assert refused.value.status == 413 and stream.at <= 100_000 + 1000


def test_headers_that_never_end_are_refused_by_the_decoders_memory_limit():
    data = b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"file\"" + b"x" * 10**6
    with pytest.raises(RequestEntityTooLarge):
        events(data)
