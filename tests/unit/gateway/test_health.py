"""GET /readyz tells the public only "not ready"; the details, without secrets, go to the log."""

import json
import secrets

import pytest

from common.settings import MessagingSettings, MongoSettings
from gateway import create_app
from gateway.config import GatewayConfig
from gateway.health import redact
from tools.processes import free_port

PASSWORD = "s3cret-Pa55word"


def _app(mongodb_uri: str, rabbitmq_url: str, auth_url: str):
    config = GatewayConfig(
        auth_url=auth_url, auth_timeout=1.0, max_upload_bytes=1024,
        download_url_secret=secrets.token_urlsafe(32), download_url_ttl=60,
        mongo=MongoSettings(uri=mongodb_uri, db="mp3test_health"),
        messaging=MessagingSettings(rabbitmq_url, 3, 1.0, 5.0), log_level="WARNING")
    return create_app({"GATEWAY": config, "TESTING": True})


@pytest.mark.parametrize("text, expected", [
    ("cannot reach amqp://guest:hunter2@rabbit:5672/%2F now",
     "cannot reach amqp://***@rabbit:5672/%2F now"),
    ("mongodb://root:pw@a:1,b:2/?authSource=admin", "mongodb://***@a:1,b:2/?authSource=admin"),
    ("GET http://user@auth:5000/healthz and HTTPS://u:p@x/", "GET http://***@auth:5000/healthz "
                                                             "and HTTPS://***@x/"),
    ("mongodb://a:1 plain, no credentials: user@example.com",
     "mongodb://a:1 plain, no credentials: user@example.com"),
])
def test_redact_hides_uri_credentials_only(text, expected):
    assert redact(text) == expected


def test_not_ready_says_only_that_and_logs_each_check_without_credentials(capsys):
    closed = free_port()
    app = _app(f"mongodb://root:{PASSWORD}@127.0.0.1:{closed}/?serverSelectionTimeoutMS=500",
               f"amqp://guest:{PASSWORD}@127.0.0.1:{closed}/%2F",
               f"http://127.0.0.1:{closed}")
    try:
        resp = app.test_client().get("/readyz")
    finally:  # its client would go on trying to connect, from a thread, in later tests
        if "store" in app.extensions:
            app.extensions["store"].close()
    assert resp.status_code == 503
    assert resp.get_json() == {"error": "not ready"}
    out = capsys.readouterr().out
    [line] = [json.loads(raw) for raw in out.splitlines()
              if raw.startswith("{") and '"not ready"' in raw]
    assert set(line["checks"]) == {"mongodb", "rabbitmq", "auth"}
    assert all(state.startswith("unavailable: ") for state in line["checks"].values())
    assert PASSWORD not in out

