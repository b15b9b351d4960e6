"""Password guessing, mass registration and upload floods against the real gateway: after a few
tries the attacker gets 429 with Retry-After, whatever address they claim, on every replica."""

from __future__ import annotations

import math
import secrets

import pytest
import requests

from tools import devstack
from tools.processes import free_port

pytestmark = pytest.mark.security

PASSWORD = "correct horse battery"
WEB = ("auth", "gateway")  # the limits live in the gateway; nothing here needs the consumers
HIGH = "100000 per hour"


def address(label: str) -> str:
    """An email address no other test uses (every stack shares the session's users table)."""
    return f"{label}-{secrets.token_hex(4)}@example.com"


def web_stack(stack_factory, **overrides):
    """auth and gateway with these limits; auth may be slow on a loaded machine, not absent."""
    return stack_factory(services=WEB, AUTH_TIMEOUT_SECONDS="60", **overrides)


def login(gateway_url: str, email: str, password: str, forwarded_for: str | None = None):
    """POST /login with HTTP Basic, optionally claiming an address in X-Forwarded-For."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return requests.post(f"{gateway_url}/login", auth=(email, password), headers=headers,
                         timeout=30)


def register(gateway_url: str, email: str, forwarded_for: str | None = None):
    """POST /register, optionally claiming an address in X-Forwarded-For."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return requests.post(f"{gateway_url}/register", json={"email": email, "password": PASSWORD},
                         headers=headers, timeout=30)


def upload(gateway_url: str, jwt: str | None, path) -> requests.Response:
    """POST /upload of one file."""
    headers = {"Authorization": f"Bearer {jwt}"} if jwt else {}
    with open(path, "rb") as fh:
        return requests.post(f"{gateway_url}/upload", headers=headers,
                             files={"file": (path.name, fh)}, timeout=60)


def assert_limited(resp: requests.Response, message: str, window: int) -> int:
    """A 429 JSON answer saying ``message`` and when to retry; returns Retry-After."""
    assert resp.status_code == 429, f"{resp.status_code} {resp.text}"
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= window
    error = resp.json()["error"]
    assert error.startswith(f"{message}; try again in "), error
    wait = "second" if retry_after == 1 else "seconds"
    if retry_after >= 120:
        retry_after_words = f"{math.ceil(retry_after / 60)} minutes"
    else:
        retry_after_words = f"{retry_after} {wait}"
    assert error == f"{message}; try again in {retry_after_words}", error
    return retry_after


def test_guessing_one_accounts_password_stops_after_the_limit_from_any_claimed_address(
        stack_factory):
    stack = web_stack(stack_factory, LOGIN_RATE_LIMIT_PER_ACCOUNT="3 per hour",
                      LOGIN_RATE_LIMIT_PER_ADDRESS=HIGH)
    victim = address("victim")
    stack.register(victim, PASSWORD, verified=False)
    other = address("bystander")
    stack.register(other, PASSWORD, verified=False)

    guesses = [login(stack.gateway_url, victim, f"guess-{i}", forwarded_for=f"198.51.100.{i}")
               for i in range(3)]
    assert [r.status_code for r in guesses] == [401, 401, 401]
    # the fourth guess, from yet another claimed address and spelled differently, is refused
    resp = login(stack.gateway_url, f"  {victim.upper()} ", "guess-3", forwarded_for="192.0.2.9")
    assert_limited(resp, "too many login attempts for this account", 3600)
    # even the right password waits: the attacker cannot tell when a guess would have worked
    assert_limited(login(stack.gateway_url, victim, PASSWORD),
                   "too many login attempts for this account", 3600)
    # the limit is the account's: another account logs in from the same address
    assert login(stack.gateway_url, other, PASSWORD).status_code == 200


def test_one_address_trying_many_accounts_is_limited_and_x_forwarded_for_does_not_help(
        stack_factory):
    stack = web_stack(stack_factory, LOGIN_RATE_LIMIT_PER_ACCOUNT=HIGH,
                      LOGIN_RATE_LIMIT_PER_ADDRESS="4 per hour")
    answers = [login(stack.gateway_url, f"target{i}@example.com", "guess",
                     forwarded_for=f"203.0.113.{i}") for i in range(4)]
    assert [r.status_code for r in answers] == [401] * 4
    for i in range(4, 6):  # new accounts, new claimed addresses: still the same TCP peer
        resp = login(stack.gateway_url, f"target{i}@example.com", "guess",
                     forwarded_for=f"203.0.113.{i}")
        assert_limited(resp, "too many login attempts from your address", 3600)


def test_mass_registration_from_one_address_is_limited(stack_factory):
    stack = web_stack(stack_factory, REGISTER_RATE_LIMIT_PER_ADDRESS="2 per hour")
    first = [register(stack.gateway_url, address("new"), forwarded_for=f"198.51.100.{i}")
             for i in range(2)]
    assert [r.status_code for r in first] == [201, 201]
    third = address("new")
    resp = register(stack.gateway_url, third, forwarded_for="198.51.100.2")
    retry_after = assert_limited(resp, "too many accounts created from your address", 3600)
    assert retry_after > 60  # an hour's window, not a minute's
    assert login(stack.gateway_url, third, PASSWORD).status_code == 401


def test_uploads_are_limited_per_user_and_anonymous_junk_counts_against_no_one(
        stack_factory, media):
    stack = web_stack(stack_factory, UPLOAD_RATE_LIMIT_PER_USER="2 per hour")
    clip = media("mkv_mp3")
    _, jwt = stack.user(PASSWORD, verified=False)
    _, other_jwt = stack.user(PASSWORD, verified=False)
    for _ in range(5):  # no token, or a forged one: 401, never 429, and nobody's quota is used
        assert upload(stack.gateway_url, None, clip).status_code == 401
        assert upload(stack.gateway_url, "forged.token.value", clip).status_code == 401
    assert [upload(stack.gateway_url, jwt, clip).status_code for _ in range(2)] == [202, 202]
    assert_limited(upload(stack.gateway_url, jwt, clip), "too many uploads", 3600)
    assert upload(stack.gateway_url, other_jwt, clip).status_code == 202


def test_x_forwarded_for_is_believed_only_for_the_configured_trusted_proxies(stack_factory):
    stack = web_stack(stack_factory, TRUSTED_PROXY_COUNT="1", LOGIN_RATE_LIMIT_PER_ACCOUNT=HIGH,
                      LOGIN_RATE_LIMIT_PER_ADDRESS="2 per hour")
    # Behind one proxy, the last entry is the one the proxy wrote: the client's address.
    # Whatever the client put before it is not believed.
    for i in range(2):
        resp = login(stack.gateway_url, f"a{i}@example.com", "guess",
                     forwarded_for=f"10.{i}.0.1, 192.0.2.10")
        assert resp.status_code == 401
    assert_limited(login(stack.gateway_url, "a2@example.com", "guess", forwarded_for="192.0.2.10"),
                   "too many login attempts from your address", 3600)
    # another client behind the same proxy has its own count
    assert login(stack.gateway_url, "a3@example.com", "guess",
                 forwarded_for="192.0.2.11").status_code == 401


def test_every_worker_and_every_replica_share_one_count(stack_factory, service_dirs):
    limit = 6
    stack = web_stack(stack_factory, WEB_WORKERS="2",
                      LOGIN_RATE_LIMIT_PER_ACCOUNT=f"{limit} per hour",
                      LOGIN_RATE_LIMIT_PER_ADDRESS=HIGH)
    replica_url = f"http://127.0.0.1:{free_port()}"
    replica = devstack.web_process("gateway", replica_url, dict(stack.env, PUBLIC_URL=replica_url),
                                   service_dirs.new("replica"), "/healthz")
    replica.start().wait_ready(60)
    try:
        gateways = [stack.gateway_url, replica_url]
        statuses = [login(gateways[i % 2], "shared@example.com", f"guess-{i}").status_code
                    for i in range(limit + 4)]
    finally:
        replica.terminate(15)
    # 2 replicas x 2 workers, each counting alone, would have let 4 x 6 guesses through
    assert statuses == [401] * limit + [429] * 4, statuses


def test_logins_keep_working_and_floods_stay_limited_when_the_limit_storage_is_down(
        stack_factory, service_dirs):
    var_dir = service_dirs.new("limits-mongodb")
    mongodb = devstack.mongodb_process({"MONGODB_URI": f"mongodb://127.0.0.1:{free_port()}"},
                                       var_dir)
    mongodb.start().wait_ready(30)
    try:
        stack = web_stack(stack_factory, MONGODB_URI=mongodb.env["MONGODB_URI"],
                          WEB_WORKERS="1", LOGIN_RATE_LIMIT_PER_ACCOUNT="3 per hour",
                          LOGIN_RATE_LIMIT_PER_ADDRESS=HIGH)
        email = address("blip")
        stack.register(email, PASSWORD, verified=False)
        assert login(stack.gateway_url, email, PASSWORD).status_code == 200
    finally:
        mongodb.terminate(10)
    # MongoDB is gone: the gateway counts in memory with the same limits instead of failing
    assert login(stack.gateway_url, email, PASSWORD).status_code == 200
    statuses = [login(stack.gateway_url, email, "guess").status_code
                for _ in range(3)]
    assert statuses == [401, 401, 429], statuses
    assert "falling back to in-memory storage" in stack.processes["gateway"].log_text()
