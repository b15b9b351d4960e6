"""The video served to ffmpeg over the loopback (converter.source): byte ranges as asked, one
secret path, the same MP3 as from a file, and a failure on our side never blamed on the file."""

import http.client
import io
import logging
import socket
import threading
import urllib.parse

import pymongo.errors
import pytest

from common.errors import PermanentError
from converter import ffmpeg, plan
from converter.source import Served
from tools.media import ffmpeg_exe

FFMPEG = ffmpeg_exe()
DATA = bytes(range(256)) * 4096  # 1 MiB, each byte telling its offset modulo 256


def _get(video: Served, path: str, headers: dict | None = None, method: str = "GET"):
    conn = http.client.HTTPConnection("127.0.0.1", video.port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _path(video: Served, reader: str = "run") -> str:
    return urllib.parse.urlsplit(video.url(reader)).path


def test_the_video_is_served_whole_or_from_any_offset(tmp_path):
    with Served(lambda: io.BytesIO(DATA), len(DATA), str(tmp_path)) as video:
        status, headers, body = _get(video, _path(video))
        assert (status, body, headers["accept-ranges"]) == (200, DATA, "bytes")
        status, headers, body = _get(video, _path(video), {"Range": "bytes=1000-"})
        assert (status, body) == (206, DATA[1000:])
        assert headers["content-range"] == f"bytes 1000-{len(DATA) - 1}/{len(DATA)}"
        status, headers, body = _get(video, _path(video, "seek"), {"Range": "bytes=5-9"})
        assert (status, body, headers["content-length"]) == (206, DATA[5:10], "5")
        assert video.position("seek", None) == 10 and video.position("run", None) == len(DATA)
        status, headers, body = _get(video, _path(video), {"Range": f"bytes={len(DATA)}-"})
        assert (status, headers["content-range"], body) == (416, f"bytes */{len(DATA)}", b"")
        status, headers, body = _get(video, _path(video), method="HEAD")
        assert (status, headers["content-length"], body) == (200, str(len(DATA)), b"")
        video.check()  # nothing failed


def test_only_the_secret_path_is_answered_and_only_while_the_job_runs(tmp_path):
    video = Served(lambda: io.BytesIO(DATA), len(DATA), str(tmp_path))
    with video:
        token = _path(video).split("/")[1]
        for path in ("/", "/run", f"/{token[:-1]}/run", f"/{token}", f"/{token}/../run",
                     f"/{token}x/run", f"/{token}/run%2Fx"):
            status, _, body = _get(video, path)
            assert (status, body) == (404, b""), path
        with socket.create_connection(("127.0.0.1", video.port), timeout=5) as raw:
            raw.sendall("GET /é/run HTTP/1.1\r\n\r\n".encode())
            assert raw.recv(100).startswith(b"HTTP/1.1 404 ")
    with pytest.raises(ConnectionRefusedError):
        _get(video, _path(video))
    assert not [t for t in threading.enumerate() if t.name.startswith("video-")]


def test_ffmpeg_reads_an_mp4_with_its_index_at_the_end_as_it_reads_the_file(media, tmp_path):
    """The MP4's `moov` is after its media data: ffmpeg seeks (a new request) to read it."""
    source = media("mp4_aac51")
    data = source.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")  # the index is at the end
    opened = []

    def open_reader():
        opened.append(1)
        return io.BytesIO(data)

    run = ffmpeg.FFmpeg(FFMPEG)
    from_file = run.probe(str(source))
    recipe = plan.plain(from_file)
    run.convert(str(source), str(tmp_path / "file.mp3"), from_file, recipe, lambda _p: None)
    with Served(open_reader, len(data), str(tmp_path)) as video:
        served = run.probe(video)
        assert served == from_file
        run.convert(video, str(tmp_path / "served.mp3"), served, recipe, lambda _p: None)
        assert video.position("convert", None) > 0
    assert (tmp_path / "served.mp3").read_bytes() == (tmp_path / "file.mp3").read_bytes()
    assert len(opened) >= 4  # the probe and the conversion each read the end, then the start


class _FailingReader(io.BytesIO):
    """GridFS that becomes unreachable after the first 64 KiB."""

    def read(self, size=-1):
        if self.tell() >= 64 << 10:
            raise pymongo.errors.AutoReconnect("connection refused")
        return super().read(min(size, (64 << 10) - self.tell()))


def test_storage_lost_mid_conversion_is_raised_as_such_not_as_a_bad_file(media, tmp_path):
    source = media("mkv_mp3")
    data = source.read_bytes()
    run = ffmpeg.FFmpeg(FFMPEG)
    info = run.probe(str(source))
    with Served(lambda: _FailingReader(data), len(data), str(tmp_path)) as video:
        with pytest.raises(pymongo.errors.AutoReconnect):
            run.convert(video, str(tmp_path / "out.mp3"), info, plan.plain(info, 9),
                        lambda _p: None)


def test_the_secret_url_is_in_no_log_line_nor_error(tmp_path, caplog):
    junk = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64  # an MP4 that is not
    run = ffmpeg.FFmpeg(FFMPEG)
    with Served(lambda: io.BytesIO(junk), len(junk), str(tmp_path)) as video:
        token = _path(video).split("/")[1]
        with caplog.at_level(logging.DEBUG), pytest.raises(PermanentError) as failed:
            run.probe(video)
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "not a media file" in str(failed.value)
    assert "video:probe" in logged  # ffmpeg's own words went to the log...
    assert token not in logged and token not in str(failed.value)  # ...without the path
