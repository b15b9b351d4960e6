"""Upload limits and resumable, seekable downloads."""

import os
import subprocess

import pymongo
import pytest
import requests

from common.store import VIDEOS
from tests.e2e.api import classic_upload, curl, wait_for_job
from tools.media import ffmpeg_exe, ffprobe_duration

pytestmark = pytest.mark.e2e
LIMIT = 200_000


def video_bytes(size: int) -> bytes:
    """``size`` bytes that start like an MP4, so only the size limit can refuse them."""
    return (b"\x00\x00\x00\x18ftypmp42" + os.urandom(size))[:size]


def stored_videos(stack, owner: str) -> list:
    client = pymongo.MongoClient(stack.env["MONGODB_URI"])
    try:
        db = client[stack.env["MONGODB_DB"]]
        return list(db[f"{VIDEOS}.files"].find({"metadata.owner": owner}))
    finally:
        client.close()


def test_an_upload_over_the_limit_gets_413_and_leaves_nothing(stack_factory, tmp_path):
    stack = stack_factory(MAX_UPLOAD_BYTES=str(LIMIT))
    email, jwt = stack.user()
    big = tmp_path / "big.mp4"
    big.write_bytes(video_bytes(LIMIT * 3))
    status, body = classic_upload(stack, jwt, big)  # curl sends Content-Length: refused at once
    assert status == 413 and str(LIMIT) in body["error"]

    def chunks():  # no Content-Length: refused once the stream passes the limit
        data = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n"
        yield data + b"Content-Type: video/mp4\r\n\r\n"
        payload = video_bytes(LIMIT * 3)
        for i in range(0, len(payload), 65536):
            yield payload[i:i + 65536]
        yield b"\r\n--b--\r\n"

    try:
        resp = requests.post(f"{stack.gateway_url}/upload", data=chunks(), timeout=30,
                             headers={"Authorization": f"Bearer {jwt}",
                                      "Content-Type": "multipart/form-data; boundary=b"})
        assert resp.status_code == 413
    except requests.ConnectionError:
        pass  # the gateway may close the connection while the body is still being sent
    assert stored_videos(stack, stack.account_id(jwt)) == []

    small = tmp_path / "small.mp4"
    small.write_bytes(video_bytes(LIMIT - 1000))
    status, body = classic_upload(stack, jwt, small)
    assert status == 202, body


def test_downloads_support_ranges_resume_and_etags(stack, media, tmp_path):
    _, jwt = stack.user()
    _, accepted = classic_upload(stack, jwt, media("mp4_aac51"))
    job = wait_for_job(stack, jwt, accepted["job_id"])
    url = f"{stack.gateway_url}/download?fid={job['mp3_fid']}"
    auth = {"Authorization": f"Bearer {jwt}"}
    full = requests.get(url, headers=auth, timeout=10)
    size = len(full.content)
    assert full.headers["Accept-Ranges"] == "bytes" and size == job["mp3_size"]

    part = requests.get(url, headers={**auth, "Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert part.content == full.content[100:200]

    tail = requests.get(url, headers={**auth, "Range": "bytes=-50"}, timeout=10)
    assert tail.status_code == 206 and tail.content == full.content[-50:]

    beyond = requests.get(url, headers={**auth, "Range": f"bytes={size + 10}-"}, timeout=10)
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"

    cached = requests.get(url, headers={**auth, "If-None-Match": full.headers["ETag"]},
                          timeout=10)
    assert cached.status_code == 304

    partial = tmp_path / "resumed.mp3"
    partial.write_bytes(full.content[: size // 2])  # an interrupted download
    status, _ = curl("-C", "-", "--output", str(partial), "-H", f"Authorization: Bearer {jwt}",
                     url)
    assert status == 206
    assert partial.read_bytes() == full.content


def test_a_video_larger_than_one_server_reply_converts(stack, tmp_path):
    big = tmp_path / "concert.mka"  # 300 s of uncompressed stereo PCM: 57.6 MB
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=220:sample_rate=48000:duration=300", "-ac", "2",
                    "-c:a", "pcm_s16le", str(big)], check=True, timeout=120)
    assert big.stat().st_size > 48_000_000
    _, jwt = stack.user()
    status, accepted = classic_upload(stack, jwt, big)
    assert status == 202, accepted
    job = wait_for_job(stack, jwt, accepted["job_id"], timeout=120)
    assert job["status"] == "done", job
    assert abs(job["duration"] - 300) <= 0.2
    out = tmp_path / "concert.mp3"
    status, _ = curl("--output", str(out), "-H", f"Authorization: Bearer {jwt}",
                     f"{stack.gateway_url}/download?fid={job['mp3_fid']}")
    assert status == 200 and abs(ffprobe_duration(out) - 300) <= 0.2
