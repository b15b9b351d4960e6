"""Small leaks an outsider could use: readiness details, a download-link existence oracle, and
services that would sign with a weak or published key."""

from __future__ import annotations

import json
import secrets
import time

import pytest
import requests
from bson import ObjectId

from gateway.security import sign_download
from tests.e2e.api import classic_upload, wait_for_job
from tools import devstack
from tools.processes import free_port, port_open

pytestmark = pytest.mark.security


def not_ready_line(process, timeout: float = 30.0) -> dict:
    """The JSON log line in which the service says why it is not ready."""
    deadline = time.monotonic() + timeout
    while True:
        for line in process.log_text().splitlines():
            if line.startswith("{") and '"not ready"' in line:
                return json.loads(line)
        if time.monotonic() > deadline:
            raise AssertionError(f"{process.name} logged no reason:\n{process.log_tail()}")
        time.sleep(0.2)


# -- /readyz -----------------------------------------------------------------------------------
def test_readiness_says_ready_and_nothing_else(stack):
    for url in (stack.gateway_url, stack.auth_url):
        resp = requests.get(f"{url}/readyz", timeout=30)
        assert resp.status_code == 200 and resp.json() == {"status": "ready"}, url


def test_gateway_not_ready_tells_the_public_nothing_and_the_log_everything(stack_factory,
                                                                           rabbitmq_node):
    password = secrets.token_urlsafe(16)
    gateway = stack_factory(services=("gateway",),
                            RABBITMQ_URL=rabbitmq_node.amqp_url(password=password))
    resp = requests.get(f"{gateway.gateway_url}/readyz", timeout=60)
    assert resp.status_code == 503 and resp.json() == {"error": "not ready"}
    line = not_ready_line(gateway.processes["gateway"])
    assert line["level"] == "warning"
    assert line["checks"]["mongodb"] == "ok"
    assert line["checks"]["rabbitmq"].startswith("unavailable: ")  # wrong password
    assert line["checks"]["auth"].startswith("unavailable: ")  # not running
    assert password not in gateway.processes["gateway"].log_text()


def test_auth_not_ready_tells_the_public_nothing_and_the_log_everything(service_env,
                                                                        service_dirs):
    password = secrets.token_urlsafe(16)
    env = dict(service_env, MYSQL_PORT=str(free_port()), MYSQL_PASSWORD=password,
               MYSQL_CONNECT_TIMEOUT_SECONDS="1")
    url = f"http://127.0.0.1:{free_port()}"
    auth = devstack.web_process("auth", url, env, service_dirs.new("auth-not-ready"), "/healthz")
    auth.start().wait_ready(60)
    try:
        resp = requests.get(f"{url}/readyz", timeout=30)
        assert resp.status_code == 503 and resp.json() == {"error": "not ready"}
        line = not_ready_line(auth)
        assert line["checks"]["mysql"].startswith("unavailable: ")
        assert password not in auth.log_text()
    finally:
        auth.terminate(10)


# -- /download?token= --------------------------------------------------------------------------
def test_a_download_link_reveals_nothing_about_which_files_exist(stack, media):
    owner, owner_jwt = stack.user()
    _, other_jwt = stack.user()
    jobs = []
    for jwt in (owner_jwt, other_jwt):
        status, accepted = classic_upload(stack, jwt, media("mkv_mp3"))
        assert status == 202, accepted
        jobs.append(wait_for_job(stack, jwt, accepted["job_id"]))
    fid = jobs[0]["mp3_fid"]

    def signed(job, jwt) -> tuple[str, str]:
        resp = requests.get(f"{stack.gateway_url}/jobs/{job['job_id']}/download-url",
                            headers={"Authorization": f"Bearer {jwt}"}, timeout=30)
        assert resp.status_code == 200, resp.text
        query = resp.json()["url"].split("?", 1)[1]
        params = dict(part.split("=", 1) for part in query.split("&"))
        return params["fid"], params["token"]

    _, good = signed(jobs[0], owner_jwt)
    _, foreign = signed(jobs[1], other_jwt)  # the attacker's own valid link, another file
    expires, signature = good.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    expired, _ = sign_download(stack.env["DOWNLOAD_URL_SECRET"], fid,
                               stack.account_id(owner_jwt), -60)

    def get(file_id: str, token: str) -> requests.Response:
        return requests.get(f"{stack.gateway_url}/download",
                            params={"fid": file_id, "token": token}, timeout=30)

    assert get(fid, good).status_code == 200  # the file exists and the real link works
    answers = {
        "unknown id": get(str(ObjectId()), good),
        "malformed id": get("not-an-id", good),
        "existing id, another file's token": get(fid, foreign),
        "existing id, tampered signature": get(fid, f"{expires}.{flipped}"),
        "existing id, expiry moved": get(fid, f"{int(expires) + 3600}.{signature}"),
        "existing id, expired token": get(fid, expired),
    }
    reference = answers["unknown id"]
    assert reference.status_code == 404
    for case, resp in answers.items():
        assert resp.status_code == 404, case
        assert resp.content == reference.content, case
        assert resp.headers["Content-Type"] == reference.headers["Content-Type"], case
        assert resp.headers["Content-Length"] == reference.headers["Content-Length"], case
    assert reference.json() == {"error": "no such file, or this download link is invalid or has "
                                         "expired"}


# -- weak signing keys -------------------------------------------------------------------------
@pytest.mark.parametrize("service, variable, value, message", [
    ("auth", "JWT_SECRET", "short-key-31-bytes-long-0123456", "is too short: 31 bytes"),
    ("auth", "JWT_SECRET", "change-me", "is the example value from the repository"),
    ("gateway", "DOWNLOAD_URL_SECRET", "x" * 20, "is too short: 20 bytes"),
    ("gateway", "DOWNLOAD_URL_SECRET", "change-me", "is the example value from the repository"),
])
def test_a_weak_or_published_key_stops_the_service_before_it_listens(
        service_env, service_dirs, service, variable, value, message):
    port = free_port()
    env = dict(service_env, **{variable: value})
    process = devstack.web_process(service, f"http://127.0.0.1:{port}", env,
                                   service_dirs.new(f"weak-{service}"), "/healthz")
    process.start()
    listened = False
    deadline = time.monotonic() + 60
    while process.alive and time.monotonic() < deadline:
        listened = listened or port_open("127.0.0.1", port, timeout=0.1)
        time.sleep(0.05)
    try:
        assert process.returncode == 2, process.log_tail()
    finally:
        process.terminate(10)
    assert not listened and not port_open("127.0.0.1", port), "it must never listen"
    log = process.log_text()
    assert f"{service}: configuration error: environment variable {variable} {message}" in log
    assert "token_urlsafe(32)" in log  # how to make a good one
    assert "Traceback" not in log
