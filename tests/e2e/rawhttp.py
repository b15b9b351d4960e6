"""Uploads over a plain socket, to control how much of a body is sent and when."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from urllib.parse import urlparse

BOUNDARY = "raw-upload-boundary"
PIECE = 64 * 1024


def multipart(path) -> bytes:
    """The multipart body of an upload of ``path`` as field ``file``."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: video/webm\r\n\r\n").encode()
    return head + path.read_bytes() + f"\r\n--{BOUNDARY}--\r\n".encode()


class Answer:
    """What the gateway answered to a raw upload, and how much of the body it was sent."""

    def __init__(self, response: http.client.HTTPResponse, sent: int):
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()
        self.sent = sent

    def json(self) -> dict:
        return json.loads(self.body)


def raw_upload(stack, jwt: str, body: bytes, chunked: bool, stop_after: int,
               while_sending=None) -> Answer:
    """POST /upload over a plain socket: at most ``stop_after`` body bytes are sent, fewer if
    the gateway answers first; then the answer is read. ``while_sending(sent)`` runs after
    each piece."""
    url = urlparse(stack.gateway_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    framing = ("Transfer-Encoding: chunked\r\n" if chunked
               else f"Content-Length: {len(body)}\r\n")
    sock.sendall((f"POST /upload HTTP/1.1\r\nHost: {url.netloc}\r\n"
                  f"Authorization: Bearer {jwt}\r\n"
                  f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n")
                 .encode())
    sent = 0
    try:
        while sent < min(stop_after, len(body)):
            if select.select([sock], [], [], 0)[0]:
                break  # answered already
            piece = body[sent:sent + PIECE]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
            if while_sending:
                while_sending(sent)
        if chunked and sent >= len(body):
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the gateway closed while the body was coming: its answer is still readable
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        return Answer(response, sent)
    finally:
        sock.close()


def upload_together(gateways: list[str], jwt: str, body: bytes, chunked: bool,
                    parallel: int) -> list:
    """``parallel`` uploads of ``body``, the n-th through gateway n mod len(gateways), each
    held after its first piece until all have begun (or been answered before it)."""
    started = threading.Barrier(parallel, timeout=30)

    def hold() -> None:
        try:
            started.wait()
        except threading.BrokenBarrierError:
            pass

    def one(n: int):
        held = []

        def after_piece(sent: int) -> None:
            if sent == PIECE:
                held.append(True)
                hold()

        target = SimpleNamespace(gateway_url=gateways[n % len(gateways)])
        answer = raw_upload(target, jwt, body, chunked=chunked, stop_after=len(body),
                            while_sending=after_piece)
        if not held:  # answered before its first piece: the others need not wait for it
            hold()
        return answer

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, range(parallel)))


def raw_request(base_url: str, head: str, body: bytes = b"", timeout: float = 30) -> Answer:
    """Send ``head`` (request line and headers, without the blank line; Host is added) and
    ``body`` exactly as given over a plain socket, then read the answer; ``Answer.closed``
    says whether the server closed the connection after it."""
    url = urlparse(base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
    try:
        request_line, _, headers = head.partition("\r\n")
        lines = [request_line, f"Host: {url.netloc}"] + ([headers] if headers else [])
        try:
            sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the whole body went out
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = Answer(response, len(body))
        answer.closed = _closed(sock)
        return answer
    finally:
        sock.close()


def _closed(sock: socket.socket, wait: float = 5.0) -> bool:
    """Whether the peer closed the connection (end of stream within ``wait`` seconds)."""
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
