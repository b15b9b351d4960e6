"""A login flood against the real auth and gateway: argon2 memory stays bounded (auth is not
OOM-killed), the overflow is told to come back later (503/429 with Retry-After, never 500 or a
hang), and the real user logs in right after."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml
from limits import parse

from gateway.config import RateLimits
from tools.processes import ROOT

pytestmark = pytest.mark.security

FLOOD = 50
PASSWORD = "correct horse battery"
AUTH_MANIFEST = ROOT / "manifests" / "base" / "auth.yaml"
UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
MIB = 1024**2


def auth_pod() -> dict:
    """auth's memory limit (bytes) and gunicorn sizing, as the Kubernetes manifest sets them."""
    docs = list(yaml.safe_load_all(AUTH_MANIFEST.read_text()))
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "auth")
    quantity = container["resources"]["limits"]["memory"]
    return {"memory_limit": int(quantity[:-2]) * UNITS[quantity[-2:]],
            "WEB_WORKERS": config["WEB_WORKERS"], "WEB_THREADS": config["WEB_THREADS"]}


def tree_rss(pid: int) -> int:
    """Resident memory (bytes) of a process and all its descendants, from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        rss = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        total += int(rss.split()[1]) * 1024
    return total


class RssSampler:
    """Samples a process tree's RSS every 20 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def flood(url: str, make_auth, count: int = FLOOD) -> list:
    """``count`` logins released at once; each is a Response or the exception it raised."""
    barrier = threading.Barrier(count)
    answers: list = [None] * count

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            answers[i] = requests.post(f"{url}/login", auth=make_auth(i), timeout=120)
        except requests.RequestException as exc:
            answers[i] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return answers


def statuses(answers: list) -> dict:
    """How many answers had each status ("error" for a request that failed)."""
    counts: dict = {}
    for answer in answers:
        key = answer.status_code if isinstance(answer, requests.Response) else "error"
        counts[key] = counts.get(key, 0) + 1
    return counts


def assert_retry_later(answer: requests.Response) -> None:
    """A JSON refusal that says when to come back."""
    assert answer.headers["Retry-After"].isdigit(), answer.headers
    assert int(answer.headers["Retry-After"]) >= 1
    assert "try again in" in answer.json()["error"], answer.text


def timed_login(url: str, email: str) -> tuple[int, float]:
    """One good login: (status, seconds)."""
    started = time.monotonic()
    resp = requests.post(f"{url}/login", auth=(email, PASSWORD), timeout=120)
    return resp.status_code, time.monotonic() - started


def test_50_concurrent_bad_logins_keep_auth_under_its_memory_limit(stack_factory):
    pod = auth_pod()
    # As deployed (workers, threads, ARGON2_MAX_CONCURRENT's default), but with no wait for a
    # slot: the logins that find it taken are refused at once, so the overflow shows however
    # fast this machine hashes (the wait itself: tests/unit/auth/test_passwords.py).
    stack = stack_factory(services=("auth",), WEB_WORKERS=pod["WEB_WORKERS"],
                          WEB_THREADS=pod["WEB_THREADS"], ARGON2_QUEUE_SECONDS="0")
    email = f"owner-{secrets.token_hex(4)}@example.com"
    resp = requests.post(f"{stack.auth_url}/register", json={"email": email, "password": PASSWORD},
                         timeout=120)
    assert resp.status_code == 201, resp.text
    timed_login(stack.auth_url, email)  # warm-up: a worker's first request imports and connects
    status, before = timed_login(stack.auth_url, email)
    assert status == 200
    auth_pid = stack.processes["auth"].pid
    idle = tree_rss(auth_pid)

    def bad_credentials(i: int) -> tuple[str, str]:  # the owner's account and unknown ones
        return (email if i % 2 else f"nobody{i}@example.com", f"guess-{i}")

    with RssSampler(auth_pid) as rss:
        answers = flood(stack.auth_url, bad_credentials)
    status, after = timed_login(stack.auth_url, email)

    print(f"\nauth RSS (master + {pod['WEB_WORKERS']} workers): idle {idle / MIB:.0f} MiB, "
          f"peak under {FLOOD} concurrent bad logins {rss.peak / MIB:.0f} MiB, "
          f"limit {pod['memory_limit'] / MIB:.0f} MiB; answers {statuses(answers)}; "
          f"good login {before:.2f}s before, {after:.2f}s right after")
    assert rss.peak < pod["memory_limit"], "auth would be OOM-killed"
    counts = statuses(answers)
    assert set(counts) <= {401, 503}, counts  # no 500, no timeout, no connection error
    assert counts.get(503, 0) >= 1, "the flood should overflow the argon2 slots"
    for answer in answers:
        if answer.status_code == 503:
            assert_retry_later(answer)
    assert status == 200, "the owner cannot log in after the flood"
    # right after: as fast as before the flood, give or take a loaded machine
    assert after < 5 + 3 * before, f"good login took {after:.1f}s after, {before:.1f}s before"


def test_a_login_flood_through_the_gateway_gets_429_or_503_with_retry_after(stack_factory):
    limits = RateLimits()  # the defaults, as deployed
    stack = stack_factory(services=("auth", "gateway"), AUTH_TIMEOUT_SECONDS="60",
                          LOGIN_RATE_LIMIT_PER_ACCOUNT=limits.login_per_account,
                          LOGIN_RATE_LIMIT_PER_ADDRESS=limits.login_per_address)
    victim = f"victim-{secrets.token_hex(4)}@example.com"
    stack.register(victim, PASSWORD, verified=False)

    answers = flood(stack.gateway_url, lambda i: (victim, f"guess-{i}"))

    counts = statuses(answers)
    print(f"\nthrough the gateway: {counts}")
    assert set(counts) <= {401, 429, 503}, counts
    per_account = parse(limits.login_per_account).amount
    assert counts[429] >= FLOOD - per_account, counts  # only the account's quota reached auth
    for answer in answers:
        if answer.status_code in (429, 503):
            assert_retry_later(answer)
        if answer.status_code == 429:  # this account's or this address's limit, both hit
            assert answer.json()["error"].startswith("too many login attempts"), answer.text
