"""A scaled stack (`make run SCALE=...`): replicas share the work, and one killed comes back."""

import os
import signal
import time

import pytest
import requests

pytestmark = pytest.mark.e2e

SCALE = {"gateway": 2, "converter": 2, "notification": 1}


def _upload(gateway: str, jwt: str, path) -> str:
    with open(path, "rb") as fh:
        resp = requests.post(f"{gateway}/upload", files={"file": fh},
                             headers={"Authorization": f"Bearer {jwt}"}, timeout=30)
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"]


def _done(gateway: str, jwt: str, job_id: str, timeout: float = 40) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(f"{gateway}/jobs/{job_id}",
                           headers={"Authorization": f"Bearer {jwt}"}, timeout=10).json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            assert job["status"] == "done", job
            return job
        time.sleep(0.3)


def _back(process, timeout: float = 20) -> None:
    """Wait until the supervisor restarted the process and it is ready again."""
    deadline = time.monotonic() + timeout
    while process.restarts < 1:
        assert time.monotonic() < deadline, f"{process.name} was not restarted"
        time.sleep(0.1)
    process.wait_ready(max(1.0, deadline - time.monotonic()))


def test_replicas_share_the_work_and_a_killed_one_comes_back(stack_factory, media):
    running = stack_factory(scale=SCALE)
    services = running.services.supervise()
    gateways = services.replicas("gateway")
    assert [p.name for p in gateways] == ["gateway", "gateway-2"]
    assert [p.name for p in services.replicas("converter")] == ["converter", "converter-2"]
    port = int(running.gateway_url.rsplit(":", 1)[1])
    assert [p.port for p in gateways] == [port, port + 1]
    urls = [f"http://127.0.0.1:{p.port}" for p in gateways]
    for url in urls:
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200

    email, jwt = running.user()
    job = _done(urls[0], jwt, _upload(urls[1], jwt, media("mkv_mp3")))
    mp3 = requests.get(f"{urls[0]}/download", params={"fid": job["mp3_fid"]},
                       headers={"Authorization": f"Bearer {jwt}"}, timeout=30)
    assert mp3.status_code == 200 and len(mp3.content) > 1000

    converter, gateway2 = services["converter-2"], services["gateway-2"]
    killed = {converter.pid, gateway2.pid}
    os.kill(converter.pid, signal.SIGKILL)
    os.kill(gateway2.pid, signal.SIGKILL)
    _back(converter)
    _back(gateway2)
    assert {converter.pid, gateway2.pid}.isdisjoint(killed)
    assert converter.restarts == gateway2.restarts == 1
    assert all(p.restarts == 0 for p in services.processes.values()
               if p not in (converter, gateway2))
    assert requests.get(f"{urls[1]}/healthz", timeout=10).status_code == 200

    job = _done(urls[1], jwt, _upload(urls[1], jwt, media("mkv_mp3")))
    assert job["mp3_fid"]
    # each replica keeps its own log, appended to across its restarts
    assert (converter.log_path.name, gateway2.log_path.name) == ("converter-2.log",
                                                                 "gateway-2.log")
    assert converter.log_text().count('"msg": "consuming"') == 2 * 2  # two starts, two lanes
    assert gateway2.log_text().count(f"Listening at: {urls[1]}") == 2
