"""Stalled and slow HTTP clients against a local gateway, and how long everyone else waits.

    python -m tools.slowclients --url http://127.0.0.1:8080 --connections 200 \\
        --user dev@example.com:devpassword --upload clip.mkv

opens connections that send part of a request and then nothing (`--mode body`: the headers of
`POST /register` and one body byte; `--mode headers`: half the headers, as slowloris does),
times `GET /healthz`, a login and an upload while they hang, and reports how many the server
has closed after `--hold` seconds. Loopback only; at most 2000 connections and 600 s.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import selectors
import socket
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import requests

MAX_CONNECTIONS = 2000
MAX_SECONDS = 600
MODES = ("body", "headers")


def loopback_address(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL; refuses any host that is not a loopback address."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or 80
    if parsed.scheme != "http" or not ipaddress.ip_address(
            socket.gethostbyname(host)).is_loopback:
        raise ValueError(f"only http:// URLs on a loopback address are allowed, got {url!r}")
    return host, port


def partial_request(host: str, mode: str, path: str = "/register",
                    headers: dict[str, str] | None = None) -> bytes:
    """The bytes a stalled client sends before going silent: a POST to ``path`` announcing a
    1000-byte body, cut after its first body byte (``body``) or inside its headers (``headers``).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    fields = {"Host": host, "Content-Type": "application/json", "Content-Length": "1000",
              **(headers or {})}
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    if mode == "headers":
        return head.encode()[:-8]
    return (head + "\r\n{").encode()


class Stalled:
    """``count`` connections that sent part of a request, then nothing (a context manager).

    ``received`` keeps what the server answered on each of them (up to 64 KiB).
    """

    def __init__(self, url: str, count: int, mode: str = "body", path: str = "/register",
                 headers: dict[str, str] | None = None):
        if not 0 < count <= MAX_CONNECTIONS:
            raise ValueError(f"count must be between 1 and {MAX_CONNECTIONS}")
        self.host, self.port = loopback_address(url)
        self.count, self.mode, self.path, self.headers = count, mode, path, headers
        self.socks: list[socket.socket] = []
        self.received: list[bytes] = []
        self._closed: set[int] = set()

    def open(self) -> Stalled:
        """Connect and send the partial requests; every connection is made before returning."""
        payload = partial_request(self.host, self.mode, self.path, self.headers)
        for _ in range(self.count):
            sock = socket.create_connection((self.host, self.port), timeout=10)
            sock.sendall(payload)
            sock.setblocking(False)
            self.socks.append(sock)
            self.received.append(b"")
        return self

    def closed_by_server(self) -> int:
        """How many of the connections the server has closed so far."""
        for i, sock in enumerate(self.socks):
            if i in self._closed:
                continue
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        self._closed.add(i)
                        break
                    self.received[i] = (self.received[i] + data)[:65536]
            except BlockingIOError:
                pass
            except OSError:  # reset by the server
                self._closed.add(i)
        return len(self._closed)

    def wait_closed(self, timeout: float) -> int:
        """Wait until the server closed all of them, or ``timeout``; returns how many it closed."""
        deadline = time.monotonic() + min(timeout, MAX_SECONDS)
        with selectors.DefaultSelector() as selector:
            for sock in self.socks:
                selector.register(sock, selectors.EVENT_READ)
            while self.closed_by_server() < len(self.socks):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                selector.select(min(remaining, 0.2))
        return self.closed_by_server()

    def close(self) -> None:
        """Close every connection from this side."""
        for sock in self.socks:
            sock.close()
        self.socks.clear()

    def __enter__(self) -> Stalled:
        try:
            return self.open()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


def multipart(path: Path, boundary: str) -> tuple[bytes, bytes]:
    """The multipart envelope around a file sent as field ``file``: (head, tail)."""
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def upload(url: str, jwt: str, path: Path, piece: int = 0, interval: float = 0.0,
           timeout: float = 30) -> tuple[int, dict]:
    """POST /upload; with ``piece``, sends ``piece`` bytes every ``interval`` s (a slow client)."""
    host, port = loopback_address(url)
    boundary = uuid.uuid4().hex
    head, tail = multipart(path, boundary)
    data = path.read_bytes()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest("POST", "/upload")
        conn.putheader("Authorization", f"Bearer {jwt}")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(len(head) + len(data) + len(tail)))
        conn.endheaders()
        body = head + data + tail
        step = piece or len(body)
        for start in range(0, len(body), step):
            if start and interval:
                time.sleep(interval)
            conn.send(body[start:start + step])
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def timed_requests(url: str, email: str, password: str, media: Path,
                   timeout: float = 30) -> dict[str, tuple[float, int]]:
    """Seconds and status of GET /healthz, POST /login and POST /upload, each on a new
    connection, one after the other."""
    loopback_address(url)
    result = {}
    started = time.monotonic()
    resp = requests.get(f"{url}/healthz", timeout=timeout)
    result["healthz"] = (time.monotonic() - started, resp.status_code)
    started = time.monotonic()
    resp = requests.post(f"{url}/login", auth=(email, password), timeout=timeout)
    result["login"] = (time.monotonic() - started, resp.status_code)
    started = time.monotonic()
    status, _ = upload(url, resp.text.strip(), media, timeout=timeout)
    result["upload"] = (time.monotonic() - started, status)
    return result


def _children(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


def rss_of_children(pid: int) -> int:
    """Summed VmRSS in bytes of a process's children (gunicorn's workers)."""
    total = 0
    for child in _children(pid):
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


def cpu_ticks_of_children(pids: list[int]) -> int:
    """Summed user + system CPU clock ticks of the children of these processes."""
    total = 0
    for pid in pids:
        for child in _children(pid):
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])
    return total


def wait_idle(pids: list[int], timeout: float = 10.0, quiet: float = 0.3) -> float:
    """Wait until the workers of these gunicorn masters use (almost) no CPU for ``quiet`` s:
    they have handled what the clients sent so far. Returns the seconds waited."""
    started = time.monotonic()
    last = cpu_ticks_of_children(pids)
    while time.monotonic() - started < min(timeout, MAX_SECONDS):
        time.sleep(quiet)
        now = cpu_ticks_of_children(pids)
        if now - last <= 2:
            break
        last = now
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.slowclients", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--mode", choices=MODES, default="body")
    parser.add_argument("--user", required=True, help="email:password of an existing account")
    parser.add_argument("--upload", type=Path, required=True, help="a small media file")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="then wait up to this long for the server to close them")
    parser.add_argument("--rss-pid", type=int,
                        help="the gateway's gunicorn master pid: wait until its workers are idle, "
                             "report their memory per stalled connection")
    args = parser.parse_args(argv)
    email, _, password = args.user.partition(":")
    before = rss_of_children(args.rss_pid) if args.rss_pid else 0
    with Stalled(args.url, args.connections, args.mode) as stalled:
        if args.rss_pid:
            wait_idle([args.rss_pid])
        else:
            time.sleep(1)
        report = {"connections": args.connections, "mode": args.mode}
        if args.rss_pid:
            report["rss_growth_kib_per_connection"] = round(
                (rss_of_children(args.rss_pid) - before) / 1024 / args.connections, 1)
        report["requests"] = {name: {"seconds": round(s, 3), "status": status} for name, (
            s, status) in timed_requests(args.url, email, password, args.upload).items()}
        if args.hold:
            started = time.monotonic()
            report["closed_by_server"] = stalled.wait_closed(args.hold)
            report["closed_after_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
