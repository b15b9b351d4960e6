"""The rate limits' settings, a counter storage that cannot reach MongoDB, and the account a
Bearer token's password attempts count for."""

import base64

import jwt
import pymongo
import pytest
from flask import Flask
from limits.storage import storage_from_string

from common.settings import ConfigError
from gateway import ratelimit_storage
from gateway.config import GatewayConfig, RateLimits
from gateway.ratelimit import login_account
from tools.processes import free_port


def test_an_unreachable_mongodb_is_reported_not_hidden():
    down = storage_from_string(f"{ratelimit_storage.SCHEME}://127.0.0.1:{free_port()}",
                               serverSelectionTimeoutMS=200)
    try:
        assert down.check() is False
        with pytest.raises(pymongo.errors.PyMongoError):
            down.incr("key", 60)
    finally:  # its client would go on trying to connect, from a thread, in later tests
        down.close()


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


def _bearer_key(token: str) -> str:
    with Flask(__name__).test_request_context(headers={"Authorization": f"Bearer {token}"}):
        return login_account()


def _unsigned(payload: str) -> str:
    """A JWT-shaped token with this payload (a header of HS256, a meaningless signature)."""
    parts = ('{"alg": "HS256", "typ": "JWT"}', payload)
    encoded = [base64.urlsafe_b64encode(p.encode()).rstrip(b"=").decode() for p in parts]
    return ".".join([*encoded, "c2ln"])


def test_a_bearer_token_counts_for_its_email_whoever_signed_it():
    forged = jwt.encode({"email": "Someone@Example.com", "exp": 1}, "not the real key" * 3)
    with Flask(__name__).test_request_context(auth=("someone@example.com", "x")):
        assert _bearer_key(forged) == login_account() != ""


@pytest.mark.parametrize("token", [
    "not-a-token", "a.b.c", "", _unsigned("[1, 2]"), _unsigned('{"email": 7}'),
    _unsigned('{"sub": "x"}'), _unsigned("[" * 100_000 + "]" * 100_000), _unsigned("{"),
], ids=["no dots", "not base64 json", "empty", "not an object", "email not text",
        "no email", "deeply nested", "truncated json"])
def test_a_malformed_bearer_token_counts_for_no_account(token):
    assert _bearer_key(token) == ""
