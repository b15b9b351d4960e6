"""argon2 under load in the real auth app: the requests past the slots get 503 + Retry-After."""

import base64
import threading

import pytest

from auth import create_app, passwords

pytestmark = pytest.mark.integration

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
