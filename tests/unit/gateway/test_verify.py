"""GET /verify answers JSON to programs and sends browsers to the page, whatever happens."""

import secrets

import pytest

from common.settings import MessagingSettings, MongoSettings
from gateway import create_app
from gateway.config import GatewayConfig
from tools.processes import free_port

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.fixture(scope="module")
def client():
    """A gateway whose auth is down: every answer comes from the gateway itself."""
    config = GatewayConfig(
        auth_url=f"http://127.0.0.1:{free_port()}", auth_timeout=1.0, max_upload_bytes=1024,
        download_url_secret=secrets.token_urlsafe(32), download_url_ttl=60,
        mongo=MongoSettings(uri="mongodb://127.0.0.1:1", db="unused"),
        messaging=MessagingSettings("amqp://127.0.0.1:1/%2F", 3, 1.0, 5.0), log_level="WARNING")
    return create_app({"GATEWAY": config, "TESTING": True}).test_client()


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_programs_get_json(client, accept):
    headers = {"Accept": accept} if accept else {}
    missing = client.get("/verify", headers=headers)
    assert missing.status_code == 400 and "missing token" in missing.get_json()["error"]
    down = client.get("/verify", query_string={"token": "abc"}, headers=headers)
    assert down.status_code == 503 and down.is_json


def test_browsers_are_sent_to_the_page_without_the_token(client):
    missing = client.get("/verify", headers={"Accept": BROWSER})
    assert missing.status_code == 303 and missing.headers["Location"] == "/#verify-failed"
    down = client.get("/verify", query_string={"token": "abc"}, headers={"Accept": BROWSER})
    assert down.status_code == 303 and down.headers["Location"] == "/#verify-unavailable"
    assert down.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in down.headers["Cache-Control"]


def test_resend_needs_a_bearer_token(client):
    resp = client.post("/verify/resend")
    assert resp.status_code == 401 and resp.is_json
