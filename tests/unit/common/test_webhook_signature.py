"""common.webhooks: Standard Webhooks signatures, checked by the independent standardwebhooks
package; webhook ids; settings."""

import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from common import webhooks
from common.settings import ConfigError


def test_our_signature_is_what_standardwebhooks_verifies():
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_")
    body = json.dumps({"type": "job.done", "data": {"job_id": "x", "title": "Zoë"}}).encode()
    headers = webhooks.signed_headers(secret, "msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers)["type"] == "job.done"
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)


def test_a_webhook_id_is_the_same_for_one_event_and_endpoint_only():
    one = webhooks.webhook_id("job.done:abc", "e1")
    assert one == webhooks.webhook_id("job.done:abc", "e1")
    assert one.startswith("msg_")
    assert len({one, webhooks.webhook_id("job.done:abc", "e2"),
                webhooks.webhook_id("job.failed:abc", "e1")}) == 3


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "1, 2.5,10")
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    settings = webhooks.WebhookSettings.from_env()
    assert settings.retry_delays == (1.0, 2.5, 10.0)
    assert [str(n) for n in settings.allowed_networks] == ["127.0.0.1/32"]
    assert webhooks.WebhookSettings().allowed_networks == ()
    for bad in ("", "0", "1,x", ",".join(["1"] * 13)):
        monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", bad)
        with pytest.raises(ConfigError, match="WEBHOOK_RETRY_DELAYS"):
            webhooks.WebhookSettings.from_env()
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "1")
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "everything")
    with pytest.raises(ConfigError, match="WEBHOOK_ALLOWED_NETWORKS"):
        webhooks.WebhookSettings.from_env()


def test_webhook_defaults_match_the_documentation(monkeypatch):
    from tests.unit.common.test_settings import _documented_default

    names = ("WEBHOOKS_PER_ACCOUNT", "WEBHOOK_URL_MAX_LENGTH", "WEBHOOK_ALLOWED_NETWORKS",
             "WEBHOOK_RETRY_DELAYS", "WEBHOOK_DISABLE_AFTER_FAILURES",
             "WEBHOOK_CONNECT_TIMEOUT_SECONDS", "WEBHOOK_READ_TIMEOUT_SECONDS",
             "WEBHOOK_RESPONSE_MAX_BYTES", "WEBHOOK_DELIVERIES_KEPT")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    limits, settings = webhooks.WebhookLimits.from_env(), webhooks.WebhookSettings.from_env()
    assert limits.per_account == int(_documented_default("WEBHOOKS_PER_ACCOUNT"))
    assert settings.url_max_length == limits.url_max_length == int(
        _documented_default("WEBHOOK_URL_MAX_LENGTH"))
    assert _documented_default("WEBHOOK_ALLOWED_NETWORKS") == "empty"
    assert settings.allowed_networks == limits.allowed_networks == ()
    assert ",".join(f"{d:g}" for d in settings.retry_delays) == _documented_default(
        "WEBHOOK_RETRY_DELAYS")
    assert settings.disable_after == int(_documented_default("WEBHOOK_DISABLE_AFTER_FAILURES"))
    assert settings.connect_timeout == float(
        _documented_default("WEBHOOK_CONNECT_TIMEOUT_SECONDS"))
    assert settings.read_timeout == float(_documented_default("WEBHOOK_READ_TIMEOUT_SECONDS"))
    assert settings.response_max_bytes == int(_documented_default("WEBHOOK_RESPONSE_MAX_BYTES"))
    assert settings.deliveries_kept == int(_documented_default("WEBHOOK_DELIVERIES_KEPT"))
