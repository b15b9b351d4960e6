"""argon2 under load: a bounded number of hashes at once per process, the rest 503 + Retry-After."""

import base64
import threading

import pytest
from argon2 import PasswordHasher

from auth import create_app, passwords
from auth.config import AuthConfig
from common.settings import ConfigError

PASSWORD = "correct horse battery"


def _basic(user: str, password: str) -> dict:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def bounded_client(make_config, app):
    """A client of an app allowing one argon2 operation at a time, waiting 0.2 s for it."""
    bounded = create_app({"AUTH": make_config(argon2_max_concurrent=1, argon2_queue_seconds=0.2),
                          "TESTING": True})
    yield bounded.test_client()
    passwords.configure(passwords.DEFAULT_MAX_CONCURRENT, passwords.DEFAULT_QUEUE_SECONDS)


@pytest.fixture
def user(client, email) -> str:
    """A registered account (password PASSWORD)."""
    assert client.post("/register", json={"email": email, "password": PASSWORD}).status_code == 201
    return email


def _assert_busy(resp):
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1"
    assert resp.get_json() == {
        "error": "the server is busy checking other passwords; try again in 1 second"}


def test_hashes_keep_argon2id_at_the_library_defaults():
    defaults = PasswordHasher()
    stored = passwords.hash_password(PASSWORD)
    params = stored.split("$")[3]
    assert stored.startswith("$argon2id$v=19$")
    assert params == f"m={defaults.memory_cost},t={defaults.time_cost},p={defaults.parallelism}"
    assert (defaults.memory_cost, defaults.time_cost, defaults.parallelism) == (65536, 3, 4)
    assert passwords.MEMORY_BYTES == 64 * 1024 * 1024


def test_a_login_that_finds_every_slot_taken_gets_503_with_retry_after(bounded_client, user):
    with passwords.slots():
        _assert_busy(bounded_client.post("/login", headers=_basic(user, PASSWORD)))
    assert bounded_client.post("/login", headers=_basic(user, PASSWORD)).status_code == 200


def test_an_unknown_email_waits_for_a_slot_too(bounded_client):
    with passwords.slots():
        resp = bounded_client.post("/login", headers=_basic("nobody@example.com", "whatever"))
    _assert_busy(resp)


def test_a_register_that_finds_every_slot_taken_gets_503_and_creates_nothing(
        bounded_client, email, users_table):
    with passwords.slots():
        resp = bounded_client.post("/register", json={"email": email, "password": PASSWORD})
    _assert_busy(resp)
    assert users_table(email) is None
    resp = bounded_client.post("/register", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 201


def test_a_login_waiting_for_a_slot_gets_it_when_it_frees(make_config, user):
    client = create_app({"AUTH": make_config(argon2_max_concurrent=1, argon2_queue_seconds=30),
                         "TESTING": True}).test_client()
    answers = []
    holder = passwords.slots()
    holder.__enter__()
    try:
        waiter = threading.Thread(
            target=lambda: answers.append(client.post("/login", headers=_basic(user, PASSWORD))))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not answers  # queued behind the held slot
    finally:
        holder.__exit__(None, None, None)
    waiter.join(30)
    assert answers and answers[0].status_code == 200


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
