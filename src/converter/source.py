"""The uploaded video as the job's ffmpeg runs read it.

A job's video is not copied to disk before ffmpeg starts: ``serve`` hands it to ffmpeg
straight out of GridFS, over HTTP on the loopback, so ffmpeg decodes while the rest still
streams in (the transfer overlaps the work instead of preceding it). HTTP because ffmpeg must be
able to seek: an MP4 whose index (`moov`) is at its end, as most phone recordings are, is read
from its last bytes first, then from its start; a pipe cannot do that, an HTTP server answering
Range requests can (ffmpeg asks for `bytes=<offset>-` at each seek). Each run's input guard then
allows `http` and `tcp` instead of `file`; the format whitelist is what keeps an upload from
opening anything else (no playlist or manifest demuxer, the mov demuxer's external references
off), and the server answers one secret path only, for as long as the job runs.

``LocalFile`` is the same interface over a file on disk (tests, the benchmark's raw ffmpeg).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import queue
import re
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler

from converter import sandbox

log = logging.getLogger(__name__)
SEND_BYTES = 256 << 10  # bytes sent at a time
READ_BYTES = 1 << 20  # bytes read from GridFS at a time (one chunk)
READ_AHEAD_BYTES = 2 << 20  # read from GridFS ahead of what ffmpeg has taken, at most
# The socket buffers between us and ffmpeg, each way: the bytes sent are then the bytes ffmpeg
# has read, give or take this much, and its progress can be told from them (progress.py).
BUFFER_BYTES = 64 << 10
SOCKET_SECONDS = 30.0  # a connection silent this long is closed
_RANGE = re.compile(r"^bytes=(\d{1,19})-(\d{0,19})$")
# A client that went away (ffmpeg seeks by closing one request and opening another).
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class LocalFile:
    """A video on local disk, read with ffmpeg's `file` protocol."""

    protocols = "file"
    options: tuple[str, ...] = ()

    def __init__(self, path: str):
        self.path = path
        self.cwd = os.path.dirname(os.path.abspath(path))

    @functools.cached_property
    def size(self) -> int:
        return os.path.getsize(self.path)

    def url(self, reader: str) -> str:
        """What a run named ``reader`` opens: the path as a local-file URL (never read as
        another protocol)."""
        return "file:" + self.path

    def position(self, reader: str, pid: int | None) -> int | None:
        """How far run ``pid`` has read into the file (its descriptor's offset)."""
        return sandbox.read_position(pid, self.path) if pid else None

    def check(self) -> None:
        """Nothing can have failed on our side of a local file."""

    def redact(self, text: str) -> str:
        return text


def of(source: str | LocalFile | Served) -> LocalFile | Served:
    """A source for ffmpeg: a path is a LocalFile."""
    return LocalFile(source) if isinstance(source, str) else source


class Served:
    """A stored GridFS file served to ffmpeg on 127.0.0.1 (see the module's docstring).

    ``with Served(open_reader, size, cwd) as video:`` — ``open_reader()`` gives a new seekable
    reader of the file for each request; ``cwd`` is where the runs work. Each run opens
    ``url(reader)`` (its own path, so its progress is told apart from a run beside it);
    ``position(reader, pid)`` is how far that run has read; ``check()`` raises what failed on
    our side (MongoDB unreachable, a chunk missing) so a run that stopped because of it is not
    blamed on the file.
    """

    protocols = "http,tcp"
    options = ("-recv_buffer_size", str(BUFFER_BYTES))  # ffmpeg's side of BUFFER_BYTES

    def __init__(self, open_reader, size: int, cwd: str):
        self.size, self.cwd = size, cwd
        self._open_reader = open_reader
        self._token = secrets.token_urlsafe(24)
        self._positions: dict[str, int] = {}
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._context = contextvars.copy_context()  # the job's log fields
        self._acceptor = threading.Thread(target=self._accept, name="video-server",
                                          daemon=True)

    def __enter__(self) -> Served:
        self._acceptor.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def url(self, reader: str) -> str:
        return f"http://127.0.0.1:{self.port}/{self._token}/{reader}"

    def position(self, reader: str, pid: int | None) -> int | None:
        return self._positions.get(reader)

    def check(self) -> None:
        if self._failure is not None:
            raise self._failure

    def redact(self, text: str) -> str:
        """``text`` (ffmpeg's output) without the secret path: it names the input "video"."""
        return text.replace(f"http://127.0.0.1:{self.port}/{self._token}/", "video:")

    def close(self) -> None:
        """Stop listening, cut every open connection and wait for their threads."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        except OSError:
            pass
        self._listener.close()
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=5)  # no connection comes in after this
        with self._lock:
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    # -- the server ---------------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                conn, _address = self._listener.accept()
            except OSError:
                return  # closed
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER_BYTES)
            thread = threading.Thread(target=self._context.copy().run, args=(self._serve, conn),
                                      name="video-request", daemon=True)
            with self._lock:
                self._connections.add(conn)
                self._threads.add(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            _Request(conn, ("127.0.0.1", 0), self)
        except _GONE:
            pass
        except Exception as exc:  # noqa: BLE001 - kept for check(), the run's outcome
            log.warning("serving the video to ffmpeg failed", extra={"error": repr(exc)})
            self._failure = self._failure or exc
        finally:
            conn.close()
            with self._lock:
                self._connections.discard(conn)
                self._threads.discard(threading.current_thread())

    def _reader_name(self, path: str) -> str | None:
        """The run named by a request's path, or None when it is not this video's path."""
        prefix, _, name = path.partition("?")[0].lstrip("/").partition("/")
        if not secrets.compare_digest(prefix.encode(), self._token.encode()):
            return None
        return name if re.fullmatch(r"[a-z]{1,16}", name) else None

    def _send(self, request: _Request, name: str, start: int, end: int) -> None:
        """Bytes start..end (inclusive) of the file to the client. The first READ_BYTES are
        read at once (ffmpeg looking for a header or an index reads no more, then seeks);
        the rest by a thread of its own, up to READ_AHEAD_BYTES ahead, so a long read never
        waits on a query."""
        with contextlib.closing(self._open_reader()) as reader:
            reader.seek(start)
            first = reader.read(min(READ_BYTES, end + 1 - start))
            if not first:
                raise OSError(f"the stored video ended at byte {start} of {self.size}")
            position = self._write(request, name, start, memoryview(first))
            if position > end:
                return
            pieces: queue.Queue = queue.Queue(maxsize=READ_AHEAD_BYTES // READ_BYTES)
            gone = threading.Event()
            reading = threading.Thread(target=self._context.copy().run,
                                       args=(self._read, reader, position, end, pieces, gone),
                                       name="video-read", daemon=True)
            reading.start()
            try:
                while position <= end:
                    data = pieces.get()
                    if isinstance(data, BaseException):
                        raise data
                    position = self._write(request, name, position, data)
            finally:
                gone.set()
                while reading.is_alive():  # unblock its put(), then let it end
                    try:
                        pieces.get(timeout=0.01)
                    except queue.Empty:
                        pass

    def _write(self, request: _Request, name: str, position: int, data: memoryview) -> int:
        """Send ``data`` (the bytes at ``position``) to the client: the position after it."""
        for at in range(0, len(data), SEND_BYTES):
            piece = data[at: at + SEND_BYTES]
            position += len(piece)
            self._positions[name] = position  # before: the client may be faster
            request.wfile.write(piece)
        return position

    def _read(self, reader, start: int, end: int, pieces: queue.Queue,
              gone: threading.Event) -> None:
        """Put bytes start..end of the file into ``pieces`` (an error instead, if one happens)
        until done or ``gone``."""
        try:
            position = start
            while position <= end and not gone.is_set():
                data = memoryview(reader.read(min(READ_BYTES, end + 1 - position)))
                if not data:
                    raise OSError(f"the stored video ended at byte {position} of {self.size}")
                pieces.put(data)
                position += len(data)
        except BaseException as exc:  # noqa: BLE001 - raised by the sending thread
            pieces.put(exc)


class _Request(BaseHTTPRequestHandler):
    """One request of ffmpeg's: GET (or HEAD) of the video's path, whole or a byte range."""

    protocol_version = "HTTP/1.1"
    timeout = SOCKET_SECONDS
    server: Served

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        served = self.server
        name = served._reader_name(self.path)
        if name is None:
            self._refuse(404)
            return
        size, start, end = served.size, 0, served.size - 1
        asked = self.headers.get("Range")
        if asked is not None:
            match = _RANGE.match(asked.strip())
            if match is None or int(match[1]) >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(match[1])
            end = min(int(match[2]), size - 1) if match[2] else size - 1
            if end < start:
                self._refuse(416)
                return
        self.send_response(206 if asked is not None else 200)
        if asked is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end + 1 - start))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if body and size:
            served._send(self, name, start, end)

    def _refuse(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def log_message(self, *_args) -> None:
        """No access log: the job's own lines say what happened."""
