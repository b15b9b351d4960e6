"""The rate limits' settings, and a counter storage that cannot reach MongoDB."""

import pymongo
import pytest
from limits.storage import storage_from_string

from common.settings import ConfigError
from gateway import ratelimit_storage
from gateway.config import GatewayConfig, RateLimits
from tools.processes import free_port


def test_an_unreachable_mongodb_is_reported_not_hidden():
    down = storage_from_string(f"{ratelimit_storage.SCHEME}://127.0.0.1:{free_port()}",
                               serverSelectionTimeoutMS=200)
    assert down.check() is False
    with pytest.raises(pymongo.errors.PyMongoError):
        down.incr("key", 60)


def test_limits_and_trusted_proxies_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DOWNLOAD_URL_SECRET", "x" * 40)
    config = GatewayConfig.from_env()
    assert config.rate_limits == RateLimits()
    assert config.trusted_proxy_count == 0
    monkeypatch.setenv("LOGIN_RATE_LIMIT_PER_ACCOUNT", "3 per hour; 10 per day")
    monkeypatch.setenv("TRUSTED_PROXY_COUNT", "1")
    config = GatewayConfig.from_env()
    assert config.rate_limits.login_per_account == "3 per hour; 10 per day"
    assert config.trusted_proxy_count == 1


@pytest.mark.parametrize("value", ["ten per minute", "10 per fortnight", "0 per hour", ""])
def test_a_limit_that_is_not_one_stops_the_gateway_with_a_clear_message(monkeypatch, value):
    monkeypatch.setenv("DOWNLOAD_URL_SECRET", "x" * 40)
    monkeypatch.setenv("UPLOAD_RATE_LIMIT_PER_USER", value)
    with pytest.raises(ConfigError, match="UPLOAD_RATE_LIMIT_PER_USER must be a rate limit such "
                                          "as '10 per minute'"):
        GatewayConfig.from_env()
