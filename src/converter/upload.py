"""The MP3 stored in GridFS while ffmpeg still writes it.

GridFS keeps a file as chunks of a fixed size of the whole file, here the ID3 tag followed by
ffmpeg's audio frames, so no chunk can be stored before the tag's length is known. The tag
holds the text tags, the cover picture (taken alongside the conversion, usually done long
before it) and the chapters (known only when ffmpeg has ended, fitted to the MP3's length). So
``MP3Upload`` guesses the tag as soon as ``guess`` can tell it (the cover taken; no chapters,
as most uploads have none), and from then on stores each chunk ffmpeg has written, except the
first audio bytes, which ffmpeg rewrites when it ends (its first frame, the Xing header with the
frame count), and the tag's. ``finish(tag)`` then stores what is left: when the guess was
right, the rest and the chunks held back; otherwise every chunk again, with the real tag. The
file document is written last either way, so no one sees the MP3 before it is whole, and only
once the chunk stored first is found still there: the sweep removes chunks without a file older
than ORPHAN_GRACE_SECONDS, a file's all at once (``Store.delete_file``), so that one is gone if
any removal came since; such a job is retried, never finished with a hole. (Counting every
chunk would tell the same, but nx-27017 returns a chunk's data even when asked for its number
alone: the count read a 600 s MP3's 13 MiB back, 22 ms, where one chunk takes 2 ms.) ``abort``
(or an error leaving the ``with`` block) removes every chunk written.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable

from common.errors import RetryableError
from common.gridio import GridWriter

HOLD_BYTES = 64 << 10  # the start of ffmpeg's output, stored last (it rewrites its first frame)
POLL_SECONDS = 0.05  # how often the file is looked at while ffmpeg writes it


class MP3Upload:
    """``path``, the MP3 ffmpeg is writing, behind an ID3 tag, into ``writer`` (see the module's
    docstring). ``guess()``: the tag as it will most likely be, or None while it cannot tell."""

    def __init__(self, writer: GridWriter, path: str, guess: Callable[[], bytes | None]):
        self._writer, self._path, self._guess = writer, path, guess
        self._chunk = writer.chunk_size
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._prefix: bytes | None = None  # the guessed tag, once chunks went out behind it
        self._held = 0  # chunks [0, _held) wait for finish()
        self._next = 0  # the next chunk to store
        self._first: int | None = None  # the chunk stored first (a removal since takes it)
        self._thread = threading.Thread(target=contextvars.copy_context().run,
                                        args=(self._follow,), name="mp3-upload", daemon=True)

    def __enter__(self) -> MP3Upload:
        self._thread.start()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None:
            self.abort()

    @property
    def streamed(self) -> int:
        """Chunks stored while ffmpeg wrote."""
        return max(0, self._next - self._held) if self._prefix is not None else 0

    def finish(self, tag: bytes):
        """Store the rest, ``tag`` in front of the whole file ffmpeg wrote: the file's id."""
        self._halt()
        if self._error is not None:
            raise self._error
        total = len(tag) + os.path.getsize(self._path)
        if tag != self._prefix:  # no guess, or a wrong one (chapters): all of it, again
            if self._prefix is not None and self._next > self._held:
                self._writer.abort()
            self._prefix, self._held, self._next, self._first = tag, 0, 0, None
        chunks = -(-total // self._chunk)
        with open(self._path, "rb") as audio:
            for n in (*range(self._next, chunks), *range(min(self._held, chunks))):
                self._put(audio, n, total)
        if self._first is not None and not self._writer.has_chunk(self._first):  # swept
            raise RetryableError("the MP3's chunks went missing while it was stored")
        self._writer.length = total
        return self._writer.close()

    def abort(self) -> None:
        """Stop, and remove every chunk stored."""
        self._halt()
        self._writer.abort()

    def _halt(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _follow(self) -> None:
        """Until halted: store each whole chunk past the held ones that ffmpeg has written."""
        try:
            while (prefix := self._guess()) is None:
                if self._stop.wait(POLL_SECONDS):
                    return
            held = -(-(len(prefix) + HOLD_BYTES) // self._chunk)
            self._prefix, self._held, self._next = prefix, held, held
            audio = None
            try:
                while not self._stop.is_set():  # finish() stores whatever is left
                    if audio is None and os.path.exists(self._path):
                        audio = open(self._path, "rb")  # noqa: SIM115 - closed below
                    if audio is not None:
                        written = len(prefix) + os.fstat(audio.fileno()).st_size
                        while (self._next + 1) * self._chunk <= written and (
                                not self._stop.is_set()):
                            self._put(audio, self._next, written)
                            self._next += 1
                    self._stop.wait(POLL_SECONDS)
            finally:
                if audio is not None:
                    audio.close()
        except BaseException as exc:  # noqa: BLE001 - raised by finish()
            self._error = exc

    def _put(self, audio, n: int, total: int) -> None:
        """Store chunk ``n`` of the file (prefix + audio) of ``total`` bytes."""
        start, end = n * self._chunk, min(total, (n + 1) * self._chunk)
        prefix = self._prefix or b""
        data = prefix[start:end]
        if end > len(prefix):
            offset = max(0, start - len(prefix))
            data += os.pread(audio.fileno(), end - max(start, len(prefix)), offset)
        self._writer.put(n, data)
        if self._first is None:
            self._first = n
