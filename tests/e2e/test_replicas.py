"""Two gateway replicas on the same databases, requests alternating between them: the limits are
the same as with one gateway. The login and upload rate limits trip at the same count, and
uploads sent at the same moment through different replicas cannot together pass the storage
quota or the limit of conversions waiting (the counts live in MongoDB, not in a process)."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.rawhttp import multipart, upload_together
from tests.e2e.storage import VIDEOS, call, inventory
from tools import devstack
from tools.media import make_noise
from tools.processes import free_port

pytestmark = pytest.mark.e2e
WEB = ("auth", "gateway")  # no converter: what is accepted stays stored and waiting
PASSWORD = "correct horse battery"
LOGIN_LIMIT = 5
UPLOAD_LIMIT = 3


@pytest.fixture
def two_gateways(stack_factory, service_dirs):
    """two_gateways(**env) -> (stack, [its gateway's URL, a second gateway's URL]): the second
    is another gateway process (WEB_WORKERS workers of its own) with the stack's environment,
    on its own port."""
    replicas = []

    def start(**overrides: str):
        stack = stack_factory(services=WEB, AUTH_TIMEOUT_SECONDS="60", **overrides)
        url = f"http://127.0.0.1:{free_port()}"
        replica = devstack.web_process("gateway", url, stack.env, service_dirs.new("replica"),
                                       "/healthz")
        replicas.append(replica)
        replica.start().wait_ready(60)
        stack.processes["gateway-2"] = replica  # its log tail comes with a failure's report
        return stack, [stack.gateway_url, url]

    yield start
    for replica in replicas:
        replica.terminate(15)


def login_statuses(gateways: list[str], email: str, tries: int) -> list[int]:
    """Wrong passwords for ``email``, the n-th try through gateway n mod len(gateways)."""
    return [requests.post(f"{gateways[n % len(gateways)]}/login", auth=(email, f"guess-{n}"),
                          timeout=30).status_code for n in range(tries)]


def upload_statuses(gateways: list[str], jwt: str, path, tries: int) -> list[int]:
    """Uploads of ``path``, the n-th through gateway n mod len(gateways)."""
    statuses = []
    for n in range(tries):
        with open(path, "rb") as fh:
            statuses.append(requests.post(
                f"{gateways[n % len(gateways)]}/upload", files={"file": (path.name, fh)},
                headers={"Authorization": f"Bearer {jwt}"}, timeout=60).status_code)
    return statuses


def test_rate_limits_trip_at_the_same_count_through_two_gateways(two_gateways, media):
    stack, gateways = two_gateways(LOGIN_RATE_LIMIT_PER_ACCOUNT=f"{LOGIN_LIMIT} per hour",
                                   LOGIN_RATE_LIMIT_PER_ADDRESS="100000 per hour",
                                   UPLOAD_RATE_LIMIT_PER_USER=f"{UPLOAD_LIMIT} per hour")
    one, both = stack.user(PASSWORD)[0], stack.user(PASSWORD)[0]  # each logged in once
    tries = LOGIN_LIMIT + 3
    alone = login_statuses(gateways[:1], one, tries)
    alternating = login_statuses(gateways, both, tries)
    print(f"\nlogins, one gateway: {alone}\nlogins, alternating: {alternating}")
    assert alone == alternating == [401] * (LOGIN_LIMIT - 1) + [429] * 4
    # the right password waits too, through either gateway
    for gateway in gateways:
        assert requests.post(f"{gateway}/login", auth=(both, PASSWORD),
                             timeout=30).status_code == 429

    clip = media("mov")
    _, jwt_one = stack.user(PASSWORD)
    _, jwt_both = stack.user(PASSWORD)
    tries = UPLOAD_LIMIT + 3
    alone = upload_statuses(gateways[:1], jwt_one, clip, tries)
    alternating = upload_statuses(gateways, jwt_both, clip, tries)
    print(f"uploads, one gateway: {alone}\nuploads, alternating: {alternating}")
    assert alone == alternating == [202] * UPLOAD_LIMIT + [429] * 3
    assert call(stack, "GET", "/account", jwt_both).json()["usage"]["active_jobs"] == UPLOAD_LIMIT


def test_uploads_through_two_gateways_at_once_cannot_pass_the_quotas(two_gateways, media,
                                                                     media_dir):
    video = make_noise(media_dir, 300)  # about 1 MB: room for one in the quota, not two
    quota = int(video.stat().st_size * 1.5)
    # confirmed accounts may have 10 conversions waiting, unconfirmed ones 2 (the default)
    stack, gateways = two_gateways(USER_STORAGE_QUOTA_BYTES=str(quota))

    _, jwt = stack.user(PASSWORD)
    for chunked in (False, True):
        answers = upload_together(gateways, jwt, multipart(video), chunked, parallel=4)
        statuses = sorted(answer.status for answer in answers)
        print(f"\n4 uploads ({'chunked' if chunked else 'with length'}) through 2 gateways, "
              f"room for 1: {statuses}")
        assert statuses == [202, 413, 413, 413], statuses
        usage = call(stack, "GET", "/account", jwt).json()["usage"]
        assert usage == {"bytes": video.stat().st_size, "active_jobs": 1}
        stored = inventory(stack)
        assert stored["jobs"] == stored[f"{VIDEOS}.files"] == 1, stored
        [accepted] = [answer.json()["job_id"] for answer in answers if answer.status == 202]
        assert call(stack, "DELETE", f"/jobs/{accepted}", jwt).status_code == 204

    _, jwt = stack.user(PASSWORD, verified=False)
    small = media("mov")  # about 80 KB
    assert upload_statuses(gateways[1:], jwt, small, 1) == [202]  # one of two places taken
    answers = upload_together(gateways, jwt, multipart(small), False, parallel=4)
    statuses = sorted(answer.status for answer in answers)
    print(f"4 uploads through 2 gateways, 1 of 2 places free: {statuses}")
    assert statuses == [202, 429, 429, 429], statuses
    for answer in answers:
        if answer.status == 429:
            assert answer.json()["error"].startswith("you have 2 conversions waiting")
    assert call(stack, "GET", "/account", jwt).json()["usage"]["active_jobs"] == 2
