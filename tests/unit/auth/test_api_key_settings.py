"""API keys without servers: the secret's shape and stored form, and the limits' settings
(defaults as README documents them, values out of range refused at start)."""

import hashlib
import re

import pytest

from auth.apikeys import KeySettings, digest, new_secret
from auth.config import _key_settings
from common.apikeys import bearer_is_api_key, is_api_key
from common.settings import ConfigError
from tests.unit.common.test_settings import _documented_default

VARIABLES = ("API_KEYS_PER_ACCOUNT", "API_KEY_NAME_MAX_LENGTH", "API_KEY_MAX_DAYS")


def test_a_secret_is_recognisable_random_and_stored_as_its_sha256():
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    for secret in secrets:
        assert re.fullmatch(r"mp3k_[A-Za-z0-9_-]{43}", secret) and is_api_key(secret)
        assert digest(secret) == hashlib.sha256(secret.encode()).digest()
    assert bearer_is_api_key("Bearer mp3k_x") and bearer_is_api_key("bearer  mp3k_x")
    assert not bearer_is_api_key("Bearer eyJhbGciOi.x.y") and not bearer_is_api_key(None)
    assert not bearer_is_api_key("Basic mp3k_x")


def test_the_limits_default_as_documented(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings = _key_settings()
    assert settings == KeySettings()
    assert settings.per_account == int(_documented_default("API_KEYS_PER_ACCOUNT"))
    assert settings.name_max_length == int(_documented_default("API_KEY_NAME_MAX_LENGTH"))
    assert settings.max_days == int(_documented_default("API_KEY_MAX_DAYS"))


@pytest.mark.parametrize(("name", "value"), [
    ("API_KEYS_PER_ACCOUNT", "0"), ("API_KEY_NAME_MAX_LENGTH", "201"),
    ("API_KEY_MAX_DAYS", "3651"), ("API_KEY_MAX_DAYS", "a year")])
def test_a_limit_out_of_range_stops_the_service(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        _key_settings()
