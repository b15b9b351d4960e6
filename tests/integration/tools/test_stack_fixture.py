"""The `stack` fixture runs all four services as real processes, wired to each other."""

import pytest
import requests

pytestmark = pytest.mark.e2e


def test_every_process_runs_and_the_gateway_is_ready(stack):
    assert set(stack.processes) == {
        "mongodb",
        "mailsink",
        "auth",
        "gateway",
        "converter",
        "notification",
    }
    assert all(p.alive for p in stack.processes.values()), stack.log_tails()
    resp = requests.get(f"{stack.gateway_url}/readyz", timeout=10)
    assert resp.status_code == 200, resp.text
    assert all(path.exists() for path in stack.logs.values())


def test_register_and_login_through_the_gateway(stack):
    email, token = stack.user()
    assert token.count(".") == 2
    resp = requests.post(f"{stack.gateway_url}/login", auth=(email, "wrong password"), timeout=10)
    assert resp.status_code == 401


def test_stack_factory_starts_an_isolated_gateway(stack, stack_factory):
    other = stack_factory(services=("auth", "gateway"), LOG_LEVEL="DEBUG")
    assert other.gateway_url != stack.gateway_url
    assert other.env["RABBITMQ_URL"] != stack.env["RABBITMQ_URL"]
    assert requests.get(f"{other.gateway_url}/healthz", timeout=10).status_code == 200
    assert other.processes["gateway"].env["LOG_LEVEL"] == "DEBUG"


def test_services_are_wired_from_upload_to_email_to_download(stack, mailsink, media):
    email, token = stack.user()
    auth = {"Authorization": f"Bearer {token}"}
    with open(media("mkv_mp3"), "rb") as fh:
        resp = requests.post(
            f"{stack.gateway_url}/upload", files={"file": fh}, headers=auth, timeout=30
        )
    assert resp.status_code == 202, resp.text
    [mail] = mailsink.wait_for(1, timeout=90, to=email)
    job = requests.get(
        f"{stack.gateway_url}/jobs/{resp.json()['job_id']}", headers=auth, timeout=10
    ).json()
    assert job["status"] == "done", job
    assert job["mp3_fid"] in mail.get_body(("plain",)).get_content()
    mp3 = requests.get(
        f"{stack.gateway_url}/download", params={"fid": job["mp3_fid"]}, headers=auth, timeout=30
    )
    assert mp3.status_code == 200
    assert mp3.content[:3] == b"ID3" or mp3.content[0] == 0xFF
