"""A gateway client that streams: multipart uploads from a file, downloads to a file."""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import uuid
from pathlib import Path
from urllib.parse import urlparse

import requests

BLOCK = 1024 * 1024


class Gateway:
    """One user's session with the gateway."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        parsed = urlparse(self.url)
        self.host, self.port = parsed.hostname, parsed.port
        self.email = f"bench-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(12)
        resp = requests.post(f"{self.url}/register", timeout=30,
                             json={"email": self.email, "password": password})
        resp.raise_for_status()
        resp = requests.post(f"{self.url}/login", auth=(self.email, password), timeout=30)
        resp.raise_for_status()
        self.jwt = resp.text.strip()
        payload = self.jwt.split(".")[1]
        # The account id the token names: what jobs and files carry as their owner.
        claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        self.account_id = json.loads(claims)["sub"]

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=600)

    def upload(self, path: Path) -> dict:
        """POST /upload with the file as multipart field ``file``, streamed from disk."""
        boundary = uuid.uuid4().hex
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{path.name}\"\r\nContent-Type: video/mp4\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        conn = self._connection()
        try:
            conn.putrequest("POST", "/upload")
            conn.putheader("Authorization", f"Bearer {self.jwt}")
            conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            conn.putheader("Content-Length", str(len(head) + path.stat().st_size + len(tail)))
            conn.endheaders()
            conn.send(head)
            with open(path, "rb") as src:
                while block := src.read(BLOCK):
                    conn.send(block)
            conn.send(tail)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 202:
            raise RuntimeError(f"upload answered {resp.status}: {body[:300]!r}")
        return json.loads(body)

    def download(self, fid: str, path: Path) -> int:
        """GET /download?fid=... into ``path``; returns the bytes received."""
        conn = self._connection()
        size = 0
        try:
            conn.request("GET", f"/download?fid={fid}",
                         headers={"Authorization": f"Bearer {self.jwt}"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(f"download answered {resp.status}: {resp.read(300)!r}")
            with open(path, "wb") as out:
                while block := resp.read(BLOCK):
                    out.write(block)
                    size += len(block)
        finally:
            conn.close()
        return size
