"""argon2: hashes at the library defaults, and the slots bounding how many run at once."""

import pytest
from argon2 import PasswordHasher

from auth import passwords
from auth.config import AuthConfig
from common.settings import ConfigError

PASSWORD = "correct horse battery"


def test_hashes_keep_argon2id_at_the_library_defaults():
    defaults = PasswordHasher()
    stored = passwords.hash_password(PASSWORD)
    params = stored.split("$")[3]
    assert stored.startswith("$argon2id$v=19$")
    assert params == f"m={defaults.memory_cost},t={defaults.time_cost},p={defaults.parallelism}"
    assert (defaults.memory_cost, defaults.time_cost, defaults.parallelism) == (65536, 3, 4)


def test_slots_admit_their_size_and_refuse_one_more():
    slots = passwords.Slots(2, 0.05)
    with slots, slots:
        with pytest.raises(passwords.PasswordsBusy) as busy:
            slots.__enter__()
        assert busy.value.retry_after == 1
    with slots:  # released: free again
        pass


def test_retry_after_covers_the_whole_wait():
    assert passwords.Slots(1, 0).retry_after == 1
    assert passwords.Slots(1, 2.5).retry_after == 3


def test_the_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("JWT_SECRET", "x" * 40)
    config = AuthConfig.from_env()
    assert (config.argon2_max_concurrent, config.argon2_queue_seconds) == (1, 2.0)
    monkeypatch.setenv("ARGON2_MAX_CONCURRENT", "3")
    monkeypatch.setenv("ARGON2_QUEUE_SECONDS", "0.5")
    config = AuthConfig.from_env()
    assert (config.argon2_max_concurrent, config.argon2_queue_seconds) == (3, 0.5)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("ARGON2_MAX_CONCURRENT", "0", "ARGON2_MAX_CONCURRENT must be >= 1"),
    ("ARGON2_QUEUE_SECONDS", "-1", "ARGON2_QUEUE_SECONDS must be >= 0"),
    ("ARGON2_QUEUE_SECONDS", "soon", "ARGON2_QUEUE_SECONDS must be a number"),
])
def test_bad_limits_stop_the_service_with_a_clear_message(monkeypatch, name, value, message):
    monkeypatch.setenv("JWT_SECRET", "x" * 40)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        AuthConfig.from_env()
