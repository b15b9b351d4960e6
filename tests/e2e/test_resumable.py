"""Resumable uploads (tus 1.0) through the whole stack with the tuspy client: an upload cut by a
dropped connection and one across a gateway restart both resume and convert from a byte-identical
video; a wrong checksum is 460; a text file gets POST /upload's 415; an expired unfinished upload
is removed by the sweep (and an unexpired one survives it); a large upload keeps the gateway's
memory flat."""

import base64
import hashlib
import json
import os
import socket
import subprocess
import time
from urllib.parse import urlsplit

import pymongo
import pytest
import requests
from bson import ObjectId
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError

from common.store import VIDEOS
from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.storage import sweep
from tests.security.test_login_flood import RssSampler, tree_rss
from tools.media import ffmpeg_exe
from tools.processes import port_open

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A real video of a few MiB (several GridFS chunks)."""
    path = tmp_path_factory.mktemp("resumable") / "talk.mkv"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=640x360:rate=25,noise=alls=40:allf=t", "-f", "lavfi", "-i",
                    "sine=frequency=330:sample_rate=44100", "-t", "4", "-c:v", "mpeg4",
                    "-q:v", "5", "-c:a", "pcm_s16le", str(path)], check=True, timeout=120)
    assert path.stat().st_size > 3 * MIB
    return path


def tus_client(stack, jwt: str) -> tus.TusClient:
    return tus.TusClient(f"{stack.gateway_url}/uploads",
                         headers={"Authorization": f"Bearer {jwt}"})


def head(stack, jwt: str, url: str) -> requests.Response:
    return requests.head(url, timeout=10, headers={"Authorization": f"Bearer {jwt}",
                                                   "Tus-Resumable": "1.0.0"})


def mongo(stack):
    client = pymongo.MongoClient(stack.env["MONGODB_URI"])
    return client, client[stack.env["MONGODB_DB"]]


def stored_sha256(stack, fid) -> str:
    client, db = mongo(stack)
    try:
        digest = hashlib.sha256()
        length = db[f"{VIDEOS}.files"].find_one({"_id": fid})["length"]
        n = 0
        while True:  # a few chunks per query (nx-27017 answers a query in one reply)
            chunks = list(db[f"{VIDEOS}.chunks"].find(
                {"files_id": fid, "n": {"$gte": n, "$lt": n + 4}}).sort("n", 1))
            if not chunks:
                break
            for chunk in chunks:
                assert chunk["n"] == n
                digest.update(chunk["data"])
                n += 1
        assert n == -(-length // chunks_size(db, fid))
        return digest.hexdigest()
    finally:
        client.close()


def chunks_size(db, fid) -> int:
    return db[f"{VIDEOS}.files"].find_one({"_id": fid})["chunkSize"]


def upload_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


def assert_converted_from_identical_video(stack, jwt, url, path):
    job = wait_for_job(stack, jwt, upload_id(url), timeout=120)
    assert job["status"] == "done", job
    assert job["size"] == path.stat().st_size and job["options"]["title"] == "Resumed talk"
    assert stored_sha256(stack, _fid(job)) == hashlib.sha256(path.read_bytes()).hexdigest()
    mp3 = requests.get(f"{stack.gateway_url}/download?fid={job['mp3_fid']}", timeout=30,
                       headers={"Authorization": f"Bearer {jwt}"})
    assert mp3.status_code == 200 and len(mp3.content) == job["mp3_size"] > 0


def _fid(job):
    return ObjectId(job["video_fid"])


def cut_patch(stack, jwt: str, url: str, data: bytes, offset: int, send: int) -> None:
    """A PATCH announcing all of ``data`` from ``offset`` whose connection closes after
    ``send`` bytes of it."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall((f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      f"Authorization: Bearer {jwt}\r\nTus-Resumable: 1.0.0\r\n"
                      f"Upload-Offset: {offset}\r\n"
                      "Content-Type: application/offset+octet-stream\r\n"
                      f"Content-Length: {len(data) - offset}\r\n\r\n").encode())
        sock.sendall(data[offset:offset + send])
        time.sleep(0.5)


def settled_offset(stack, jwt: str, url: str, timeout: float = 30) -> int:
    """The offset the server reports once the broken PATCH let go of the upload."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        response = head(stack, jwt, url)
        assert response.status_code == 200
        offset = int(response.headers["Upload-Offset"])
        if offset == last:
            return offset
        last = offset
        time.sleep(1)
    return last


def test_an_upload_cut_at_60_percent_resumes_and_converts_the_identical_video(stack_factory,
                                                                             video):
    stack = stack_factory(KEEP_SOURCE_VIDEOS="true")  # the video stays, to be compared
    _, jwt = stack.user()
    data = video.read_bytes()
    uploader = tus_client(stack, jwt).uploader(
        str(video), chunk_size=MIB, metadata={"filename": video.name, "title": "Resumed talk"},
        retries=5, retry_delay=1)
    uploader.set_url(uploader.create_url())
    url = uploader.url
    cut_patch(stack, jwt, url, data, 0, int(len(data) * 0.6))
    offset = settled_offset(stack, jwt, url)
    assert int(len(data) * 0.5) < offset <= int(len(data) * 0.6)  # what came was kept
    resumed = tus_client(stack, jwt).uploader(str(video), url=url, chunk_size=MIB,
                                              retries=5, retry_delay=1)
    assert resumed.offset == offset  # tuspy asked (HEAD) where to go on from
    resumed.upload()
    assert_converted_from_identical_video(stack, jwt, url, video)


def test_an_upload_resumes_across_a_gateway_restart_and_a_kill_mid_request(stack_factory,
                                                                          video):
    stack = stack_factory(KEEP_SOURCE_VIDEOS="true")
    _, jwt = stack.user()
    size = video.stat().st_size
    first = tus_client(stack, jwt).uploader(
        str(video), chunk_size=MIB, metadata={"filename": video.name, "title": "Resumed talk"})
    first.upload(stop_at=size // 2)
    url = first.url
    before = int(head(stack, jwt, url).headers["Upload-Offset"])
    assert before >= size // 2
    gateway = stack.processes["gateway"]
    gateway.restart()
    after = tus_client(stack, jwt).uploader(str(video), url=url, chunk_size=MIB)
    assert after.offset == before  # the bytes survived the restart
    # and a gateway killed (kill -9) in the middle of a PATCH: what it stored stays
    data, parts = video.read_bytes(), urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall((f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      f"Authorization: Bearer {jwt}\r\nTus-Resumable: 1.0.0\r\n"
                      f"Upload-Offset: {before}\r\n"
                      "Content-Type: application/offset+octet-stream\r\n"
                      f"Content-Length: {size - before}\r\n\r\n").encode())
        sock.sendall(data[before:before + (size - before) * 2 // 3])
        time.sleep(2)
        gateway.kill()
    deadline = time.monotonic() + 30
    while port_open("127.0.0.1", parts.port) and time.monotonic() < deadline:
        time.sleep(0.2)  # the killed workers let go of the port
    gateway.start().wait_ready(60)
    killed_at = int(head(stack, jwt, url).headers["Upload-Offset"])
    assert before < killed_at < size  # whole chunks written before the kill were kept
    # its lease lapses (LEASE_SECONDS): until then 423, which tuspy retries
    resumed = tus_client(stack, jwt).uploader(str(video), url=url, chunk_size=MIB,
                                              retries=10, retry_delay=5)
    assert resumed.offset == killed_at
    resumed.upload()
    assert_converted_from_identical_video(stack, jwt, url, video)


def test_a_wrong_checksum_is_460_and_a_right_one_is_taken(stack, video):
    _, jwt = stack.user()
    uploader = tus_client(stack, jwt).uploader(str(video), chunk_size=MIB,
                                               upload_checksum=True)
    uploader.set_url(uploader.create_url())
    data = video.read_bytes()[:MIB]
    wrong = base64.b64encode(hashlib.sha1(b"something else").digest()).decode()
    response = requests.patch(uploader.url, data=data, timeout=30, headers={
        "Authorization": f"Bearer {jwt}", "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream", "Upload-Checksum": f"sha1 {wrong}"})
    assert response.status_code == 460 and "Checksum Mismatch" in response.json()["error"]
    assert head(stack, jwt, uploader.url).headers["Upload-Offset"] == "0"
    uploader.upload()  # tuspy sends sha1 of every PATCH
    assert head(stack, jwt, uploader.url).headers["Upload-Offset"] == str(
        video.stat().st_size)


def test_a_finished_text_upload_gets_the_415_of_post_upload(stack, tmp_path):
    _, jwt = stack.user()
    text = tmp_path / "notes.mp4"
    text.write_bytes(b"these are my notes, not a video\n" * 500)
    status, classic = classic_upload(stack, jwt, text)
    assert status == 415
    uploader = tus_client(stack, jwt).uploader(str(text), metadata={"filename": text.name})
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()
    assert refused.value.status_code == 415
    assert json.loads(refused.value.response_content) == classic  # the same answer
    assert head(stack, jwt, uploader.url).status_code == 404  # nothing kept


def test_the_sweep_keeps_an_unfinished_upload_until_it_expires_then_removes_it(stack, video):
    _, jwt = stack.user()
    uploader = tus_client(stack, jwt).uploader(str(video), chunk_size=MIB,
                                               metadata={"filename": video.name})
    uploader.upload(stop_at=2 * MIB + 100)
    url = uploader.url
    account = requests.get(f"{stack.gateway_url}/account", timeout=10,
                           headers={"Authorization": f"Bearer {jwt}"}).json()
    assert account["usage"]["active_jobs"] == 1
    assert account["usage"]["bytes"] == video.stat().st_size  # reserved whole
    counts = sweep(stack, ORPHAN_GRACE_SECONDS="0")  # every chunk "old enough" to be an orphan
    assert counts["expired_uploads"] == 0
    assert head(stack, jwt, url).headers["Upload-Offset"] == str(2 * MIB + 100)
    client, db = mongo(stack)
    try:
        record = db["resumable_uploads"].find_one({"_id": ObjectId(upload_id(url))})
        fid = record["fid"]
        assert len(list(db[f"{VIDEOS}.chunks"].find({"files_id": fid, "n": {"$gte": 0,
                                                                            "$lt": 8}}))) == 2
        db["resumable_uploads"].update_one({"_id": record["_id"]},
                                           {"$set": {"expires_at": time.time() - 1}})
        counts = sweep(stack)
        assert counts["expired_uploads"] == 1
        assert list(db[f"{VIDEOS}.chunks"].find({"files_id": fid, "n": {"$gte": 0,
                                                                        "$lt": 8}})) == []
        assert db["resumable_uploads"].find_one({"_id": record["_id"]}) is None
    finally:
        client.close()
    assert head(stack, jwt, url).status_code == 404
    account = requests.get(f"{stack.gateway_url}/account", timeout=10,
                           headers={"Authorization": f"Bearer {jwt}"}).json()
    assert account["usage"]["active_jobs"] == 0 and account["usage"]["bytes"] == 0


def test_a_200_mib_upload_in_16_mib_patches_keeps_the_gateway_memory_flat(stack, tmp_path):
    _, jwt = stack.user()
    big = tmp_path / "big.mp4"
    with big.open("wb") as out:
        out.write(b"\x00\x00\x00\x18ftypmp42")
        for _ in range(200):
            out.write(os.urandom(MIB))
    gateway = stack.processes["gateway"].pid
    idle = tree_rss(gateway)
    uploader = tus_client(stack, jwt).uploader(str(big), chunk_size=16 * MIB,
                                               metadata={"filename": big.name})
    with RssSampler(gateway) as rss:
        uploader.upload()
    grown = rss.peak - idle
    print(f"\ngateway RSS (master + workers): idle {idle / MIB:.0f} MiB, peak "
          f"{rss.peak / MIB:.0f} MiB during a 200 MiB upload in 16 MiB PATCHes")
    assert grown < 48 * MIB, f"the gateway grew by {grown / MIB:.0f} MiB"
    assert head(stack, jwt, uploader.url).headers["Upload-Offset"] == str(big.stat().st_size)


def test_deleting_the_account_removes_its_unfinished_uploads(stack, video):
    _, jwt = stack.user(password="correct horse battery")
    uploader = tus_client(stack, jwt).uploader(str(video), chunk_size=MIB,
                                               metadata={"filename": video.name})
    uploader.upload(stop_at=MIB + 10)
    client, db = mongo(stack)
    try:
        record = db["resumable_uploads"].find_one({"_id": ObjectId(upload_id(uploader.url))})
        assert record is not None
        deleted = requests.delete(f"{stack.gateway_url}/account", timeout=30,
                                  headers={"Authorization": f"Bearer {jwt}"},
                                  json={"password": "correct horse battery"})
        assert deleted.status_code == 204, deleted.text
        assert db["resumable_uploads"].find_one({"_id": record["_id"]}) is None
        assert list(db[f"{VIDEOS}.chunks"].find({"files_id": record["fid"],
                                                  "n": {"$gte": 0, "$lt": 8}})) == []
    finally:
        client.close()
