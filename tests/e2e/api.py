"""What a user does with curl and the gateway's API, as test helpers."""

import json
import subprocess
import time

import pymongo
import requests

from common import covers
from common.store import MP3S, VIDEOS


def curl(*args: str) -> tuple[int, bytes]:
    """Run curl; returns (HTTP status, body)."""
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True,
                         timeout=120, check=True)
    body, _, status = out.stdout.rpartition(b"\n")
    return int(status), body


def classic_login(stack, email: str, password: str) -> str:
    """`curl -X POST $GW/login -u email:pw`."""
    status, body = curl("-X", "POST", f"{stack.gateway_url}/login", "-u", f"{email}:{password}")
    assert status == 200, body
    return body.decode()


def classic_upload(stack, jwt: str, path) -> tuple[int, dict]:
    """`curl -X POST -F 'file=@video' -H 'Authorization: Bearer $JWT' $GW/upload`."""
    status, body = curl("-X", "POST", "-F", f"file=@{path}", "-H", f"Authorization: Bearer {jwt}",
                        f"{stack.gateway_url}/upload")
    return status, json.loads(body)


def get_job(stack, jwt: str, job_id: str) -> dict:
    """GET /jobs/<id>."""
    return requests.get(f"{stack.gateway_url}/jobs/{job_id}",
                        headers={"Authorization": f"Bearer {jwt}"}, timeout=10).json()


def wait_for_job(stack, jwt: str, job_id: str, timeout: float = 60,
                 statuses=("done", "failed"), progress: float | None = None) -> dict:
    """Poll GET /jobs/<id> until its status is one of ``statuses`` (and progress reached)."""
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(stack, jwt, job_id)
        if job["status"] in statuses and (progress is None or job["progress"] >= progress):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {job['status']} after {timeout}s: {job}")
        time.sleep(0.3)


def stored_files(stack, bucket: str, job_id: str) -> list[dict]:
    """The files of GridFS ``bucket`` (``videos`` or ``mp3s``) stored for a job."""
    client = pymongo.MongoClient(stack.env["MONGODB_URI"])
    try:
        db = client[stack.env["MONGODB_DB"]]
        return list(db[f"{bucket}.files"].find({"metadata.job_id": job_id}))
    finally:
        client.close()


def mp3_files(stack, job_id: str) -> list[dict]:
    """The MP3s stored in GridFS for a job (not its cover picture, a file of the same bucket)."""
    return [doc for doc in stored_files(stack, MP3S, job_id) if not covers.is_cover(doc)]


def video_files(stack, job_id: str) -> list[dict]:
    """The uploaded videos still stored in GridFS for a job."""
    return stored_files(stack, VIDEOS, job_id)
