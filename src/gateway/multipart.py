"""A multipart/form-data body read as it streams in, as events: each text field with its value,
a file's start, the file's chunks. What the fields are for is the caller's to know."""

from collections.abc import Iterator
from dataclasses import dataclass

from werkzeug.sansio import multipart as sansio

READ_SIZE = 256 * 1024
FRAMING = 64 * 1024  # multipart headers and boundaries a body may hold beyond its file


class Unreadable(Exception):
    """The body is no multipart body (``status`` 400) or longer than allowed (413)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Field:
    """A text field: its value, or when that is longer than ``max_field_bytes`` its first
    ``max_field_bytes`` + 1 bytes, given as soon as they came (the rest is skipped)."""

    name: str
    value: bytes


@dataclass(frozen=True)
class File:
    """A file part begins (its chunks follow)."""

    name: str
    filename: str
    content_type: str


@dataclass(frozen=True)
class Chunk:
    """The next bytes of the file part begun last; ``last`` on its final chunk (which may be
    empty)."""

    data: bytes
    last: bool


def read(stream, boundary: bytes, max_bytes: int,
         max_field_bytes: int) -> Iterator[Field | File | Chunk]:
    """The events of the body read from ``stream``, READ_SIZE bytes at a time, up to its closing
    delimiter; Unreadable when it is malformed or ends early (400), or when more than
    ``max_bytes`` arrive (413: a chunked body has no Content-Length to refuse it by). Headers or
    a preamble longer than twice READ_SIZE are werkzeug's RequestEntityTooLarge (413)."""
    decoder = sansio.MultipartDecoder(boundary, max_form_memory_size=2 * READ_SIZE)
    # The decoder takes a closing delimiter cut before its last "-" for file data (werkzeug
    # 3.1): the body's last bytes are held back until the end, so that it gets them at once.
    hold, held = len(boundary) + 8, b""  # "\r\n--" boundary "--\r\n"
    received, ended = 0, False
    part = None  # the part being read: a File, a text field's name, or None (skipping)
    value = b""  # of the text field being read
    try:
        while True:
            event = decoder.next_event()
            if isinstance(event, sansio.NeedData):
                if ended:
                    raise Unreadable(400, "malformed multipart body: it ends too early")
                chunk = stream.read(READ_SIZE)
                received += len(chunk)
                if received > max_bytes:
                    raise Unreadable(413, "file too large")
                if chunk:
                    held += chunk
                    if len(held) > hold:
                        decoder.receive_data(held[:-hold])
                        held = held[-hold:]
                    continue
                ended = True
                if held:
                    decoder.receive_data(held)
                decoder.receive_data(None)
            elif isinstance(event, sansio.Epilogue):
                return
            elif isinstance(event, sansio.File):
                part = File(event.name or "", event.filename or "",
                            event.headers.get("Content-Type", "application/octet-stream"))
                yield part
            elif isinstance(event, sansio.Field):
                part, value = event.name or "", b""
            elif isinstance(event, sansio.Data) and isinstance(part, File):
                yield Chunk(event.data, last=not event.more_data)
            elif isinstance(event, sansio.Data) and part is not None:
                value += event.data
                if len(value) > max_field_bytes or not event.more_data:
                    yield Field(part, value[: max_field_bytes + 1])
                    part = None
    except ValueError as exc:  # werkzeug raises ValueError on a malformed body
        raise Unreadable(400, f"malformed multipart body: {exc}") from None
