"""What POST /upload makes of a body (gateway.upload._receive over gateway.multipart), fed
crafted bodies in crafted pieces: the one file goes to the store, whatever the framing around
it, and every refusal leaves nothing behind. The reader alone: test_multipart.py."""


import pytest
from bson import ObjectId

from common.options import InvalidOption, Options
from gateway import multipart, upload
from tests.unit.gateway.conftest import Pieces, StoreStandIn

BOUNDARY = b"b0undary-Xy3"


def part(name: str, content: bytes, filename: str | None = None,
         content_type: str = "video/mp4") -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return (b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition.encode("utf-8")
            + b"\r\nContent-Type: " + content_type.encode() + b"\r\n\r\n" + content + b"\r\n")


def body(*parts: bytes, end: bool = True) -> bytes:
    return b"".join(parts) + (b"--" + BOUNDARY + b"--\r\n" if end else b"")


@pytest.fixture(scope="module")
def video(media) -> bytes:
    """A real MP4 (the parser checks the first bytes before storing anything)."""
    return media("mp4_aac51").read_bytes()


class Refused(Exception):
    """A refusal as the view answers it: a bad option is 422 (gateway.upload._accept)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def ignore(size: int, final: bool = False) -> None:
    """A quota check that lets everything through."""


def receive(data: bytes, sizes=(), limit: int = 10 * 1024 * 1024, watch=ignore,
            store=None, pieces=None):
    store = StoreStandIn() if store is None else store
    try:
        stored = upload._receive(pieces or Pieces(data, sizes), BOUNDARY, store, ObjectId(),
                                 "user@example.com", limit, watch)
    except (upload.UploadRejected, multipart.Unreadable, InvalidOption) as exc:
        assert all(w.aborted for w in store.uploads), "a refused upload was left behind"
        raise Refused(getattr(exc, "status", 422), str(exc)) from None
    return stored, store


def test_one_file_is_stored_whole_with_its_name_and_type(video):
    stored, store = receive(body(part("file", video, "party.mp4")))
    (writer,) = store.uploads
    assert bytes(writer.data) == video and writer.closed and not writer.aborted
    assert stored == {"fid": writer.file_id, "filename": "party.mp4",
                      "content_type": "video/mp4", "size": len(video),
                      "options": Options(title="party")}
    assert writer.metadata["owner"] == "user@example.com"


@pytest.mark.parametrize("sizes", [
    [1] * 200,  # a byte at a time through the headers, the boundary and into the file
    [len(b"--") + 3, 7, 50, 1, 1, 1000],  # the first boundary split in the middle
    [10, 2**20],
])
def test_boundaries_split_across_reads_change_nothing(video, sizes):
    data = body(part("title", "Ünïcode".encode()), part("file", video, "a.mp4"),
                part("quality", b"320"))
    stored, store = receive(data, sizes)
    assert bytes(store.uploads[0].data) == video and stored["size"] == len(video)
    assert stored["options"] == Options(title="Ünïcode", quality="320")


def test_the_closing_boundary_split_byte_by_byte_is_still_found(video):
    data = body(part("file", video, "a.mp4"))
    tail_at = len(data) - len(BOUNDARY) - 10
    stored, store = receive(data, [tail_at] + [1] * 64)
    assert bytes(store.uploads[0].data) == video


def test_a_body_without_its_final_boundary_is_refused(video):
    with pytest.raises(Refused) as refused:
        receive(body(part("file", video, "a.mp4"), end=False), [4096] * 100)
    assert refused.value.status == 400 and "malformed multipart body" in str(refused.value)


def test_option_fields_before_and_after_the_file_are_read(video):
    data = body(part("title", b"my holiday"), part("file", video, "a.mp4"),
                part("end", b"1:30"))
    stored, store = receive(data)
    (writer,) = store.uploads
    assert bytes(writer.data) == video and stored["filename"] == "a.mp4"
    assert stored["options"] == Options(title="my holiday", end=90.0)


@pytest.mark.parametrize("fields, message", [
    ([("tags", b"x")], "unknown field 'tags'"),
    ([("thumbnail", b"\xff\xd8", "t.jpg")], "unknown field 'thumbnail'"),
    ([("title", b"x", "t.txt")], "title is a text field, not a file"),
    ([("start", b"5"), ("end", b"5.05")], "the trim keeps less than 0.1 s"),
    ([("quality", b"999")], "quality must be one of"),
    ([("title", b"a"), ("title", b"b")], "send the field title once"),
    ([("title", b"\xff\xfe")], "title must be UTF-8 text"),
    ([("title", b"x" * 2000)], "title is longer than 1024 bytes"),
    ([("start", b"9"), ("end", b"3")], "end (0:00:03) must be after start (0:00:09)"),
])
def test_bad_options_are_refused_and_the_file_removed(video, fields, message):
    parts = [part(*field) for field in fields]
    with pytest.raises(Refused) as refused:
        receive(body(part("file", video, "a.mp4"), *parts))
    assert refused.value.status == 422 and message in str(refused.value)  # file removed


def test_a_bad_option_before_the_file_stops_the_upload_before_it_is_stored(video):
    store = StoreStandIn()
    data = body(part("cover", b"maybe"), part("file", video, "a.mp4"))
    with pytest.raises(Refused, match="cover must be auto") as refused:
        receive(data, store=store)
    assert refused.value.status == 422 and store.uploads == []


def test_a_second_file_is_refused(video):
    with pytest.raises(Refused, match="exactly one file") as refused:
        receive(body(part("file", video, "a.mp4"), part("file", video, "b.mp4")))
    assert refused.value.status == 400


@pytest.mark.parametrize(("sent", "kept"), [
    ("../../etc/passwd.mp4", "passwd.mp4"),
    (r"C:\\Users\\me\\Videos\\clip.mp4", "clip.mp4"),  # backslashes escaped in the header
    ("/abs/dir/fête à l'été — 映画.mp4", "fête à l'été — 映画.mp4"),
    ("tab\there\x7f.mp4", "tabhere.mp4"),
    ("report\u2067\u2066lmth.exe\u2069\u2069.mp4", "reportlmth.exe.mp4"),  # bidi isolates
    ("\u202bclip\u202c\u202a.mp4", "clip.mp4"),  # embeddings
    ("evil\u202e4pm.exe", "evil4pm.exe"),  # an override
    ("", "video"),
    ("dir/", "video"),
    ("x" * 300 + ".mp4", "x" * 255),
])
def test_the_filename_keeps_only_its_printable_base_name(video, sent, kept):
    stored, store = receive(body(part("file", video, sent)))
    assert stored["filename"] == kept == store.uploads[0].filename


def test_an_empty_file_is_refused_before_anything_is_stored():
    with pytest.raises(Refused, match="empty") as refused:
        receive(body(part("file", b"", "a.mp4")))
    assert refused.value.status == 400


def test_a_body_without_the_file_field_is_refused():
    with pytest.raises(Refused, match="missing multipart field 'file'"):
        receive(body(part("title", b"a title")))


def test_a_file_under_another_name_is_refused_as_soon_as_its_headers_arrive(video):
    sent = body(part("video", video * 50, "a.mp4"))
    pieces = Pieces(sent, [1024] * (len(sent) // 1024 + 1))
    with pytest.raises(Refused, match="unknown field 'video'") as refused:
        receive(sent, pieces=pieces, limit=len(sent) * 2)
    assert refused.value.status == 422 and pieces.at < 4096  # the body is not read on


def test_a_file_that_is_not_media_is_refused_from_its_first_bytes():
    with pytest.raises(Refused, match="does not look like audio or video") as r:
        receive(body(part("file", b"#EXTM3U\n" + b"x" * 100_000, "a.mp4")), [4096] * 100)
    assert r.value.status == 415


def test_a_file_over_the_limit_is_stopped_and_its_start_removed(video):
    with pytest.raises(Refused) as refused:
        receive(body(part("file", video, "a.mp4")), [1024] * 1000, limit=len(video) - 1)
    assert refused.value.status == 413


def test_the_watch_hears_the_size_as_it_grows_and_once_at_the_end(video):
    heard = []
    receive(body(part("file", video, "a.mp4")), [8192] * 1000,
            watch=lambda size, final=False: heard.append((size, final)))
    assert heard[-1] == (len(video), True)
    sizes = [size for size, final in heard if not final]
    assert sizes == sorted(sizes) and sizes[-1] == len(video) and len(sizes) > 1


def test_a_body_longer_than_the_limit_is_refused_whatever_its_parts(video):
    """Without a Content-Length (chunked) nothing else bounds what is read: here a preamble
    before the first part, which the multipart parser skips."""
    sent = b"junk before the first part\r\n" * 100_000 + body(part("file", video, "a.mp4"))
    with pytest.raises(Refused, match="file too large") as refused:
        receive(sent, limit=len(video))
    assert refused.value.status == 413
