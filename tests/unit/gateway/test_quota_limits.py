"""Which quotas a user gets (gateway.config): smaller ones until their address is confirmed."""

import pytest

from common.settings import ConfigError
from gateway.config import GatewayConfig, Limits

GIB, MIB = 1024**3, 1024**2
VARIABLES = ("USER_STORAGE_QUOTA_BYTES", "USER_MAX_ACTIVE_JOBS",
             "UNVERIFIED_STORAGE_QUOTA_BYTES", "UNVERIFIED_MAX_ACTIVE_JOBS")


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("DOWNLOAD_URL_SECRET", "x" * 40)
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_an_unconfirmed_address_gets_the_smaller_limits_and_is_told_what_confirming_gives(env):
    config = GatewayConfig.from_env()
    verified = Limits(5 * GIB, 10)
    assert config.limits_for({"sub": "a1", "verified": True}) == verified
    unverified = Limits(200 * MIB, 2, once_verified=verified)
    assert config.limits_for({"sub": "a1", "verified": False}) == unverified
    assert config.limits_for({"sub": "a1"}) == unverified  # no flag: not confirmed


def test_the_limits_come_from_the_environment_and_unverified_ones_are_never_larger(env):
    env.setenv("USER_STORAGE_QUOTA_BYTES", "1000")
    env.setenv("USER_MAX_ACTIVE_JOBS", "3")
    env.setenv("UNVERIFIED_STORAGE_QUOTA_BYTES", "400")
    env.setenv("UNVERIFIED_MAX_ACTIVE_JOBS", "1")
    config = GatewayConfig.from_env()
    assert config.limits_for({"verified": False}) == Limits(400, 1, Limits(1000, 3))
    env.setenv("UNVERIFIED_STORAGE_QUOTA_BYTES", "5000")
    env.setenv("UNVERIFIED_MAX_ACTIVE_JOBS", "7")
    config = GatewayConfig.from_env()
    # As large as the others at most; confirming then raises nothing, and no one says it does.
    assert config.limits_for({"verified": False}) == Limits(1000, 3)


@pytest.mark.parametrize("name", ["UNVERIFIED_STORAGE_QUOTA_BYTES", "UNVERIFIED_MAX_ACTIVE_JOBS"])
@pytest.mark.parametrize(("value", "complaint"), [("0", "must be >= 1, got 0"),
                                                  ("2 GiB", "must be an integer")])
def test_a_bad_unverified_limit_stops_the_gateway_with_a_clear_message(env, name, value,
                                                                       complaint):
    env.setenv(name, value)
    with pytest.raises(ConfigError, match=f"environment variable {name} {complaint}"):
        GatewayConfig.from_env()
