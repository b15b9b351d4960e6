"""Fair use with one converter: one user's backlog does not stand in front of another user's
upload. At most USER_CONVERSIONS_AT_ONCE of an owner's jobs are in the `video` queue; the rest
wait in MongoDB and each finished job sends the owner's next one."""

import datetime as dt
import time

import pytest

from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.storage import call
from tools.media import make_noise

pytestmark = pytest.mark.e2e
BACKLOG = 10
RETENTION_SECONDS = 168 * 3600.0  # the default MP3_RETENTION_HOURS


def done_at(job: dict) -> float:
    """When the job finished: its MP3 expires exactly one retention later."""
    expires = dt.datetime.fromisoformat(job["expires_at"].replace("Z", "+00:00"))
    return expires.timestamp() - RETENTION_SECONDS


@pytest.mark.parametrize("at_once", [2, BACKLOG])
def test_one_users_backlog_does_not_starve_another_user(stack_factory, media, media_dir,
                                                        at_once):
    """With at_once=10 every job of A is queued at once, as before fair dispatch: B waits for
    the whole backlog. That run shows what the default (2) changes."""
    stack = stack_factory(USER_CONVERSIONS_AT_ONCE=str(at_once))
    assert [n for n in stack.processes if n == "converter"] == ["converter"]
    a_video = make_noise(media_dir, 120)  # about a second to convert
    _, a_jwt = stack.user()
    _, b_jwt = stack.user()

    started = time.time()
    a_ids = []
    for _ in range(BACKLOG):
        status, body = classic_upload(stack, a_jwt, a_video)
        assert status == 202, body
        a_ids.append(body["job_id"])
    b_uploaded = time.time()
    status, body = classic_upload(stack, b_jwt, media("mov"))
    assert status == 202, body
    b_id = body["job_id"]

    b_job = wait_for_job(stack, b_jwt, b_id, timeout=120)
    a_jobs = [wait_for_job(stack, a_jwt, job_id, timeout=120) for job_id in a_ids]
    assert b_job["status"] == "done" and all(j["status"] == "done" for j in a_jobs)
    a_done = sorted(done_at(job) for job in a_jobs)
    b_done = done_at(b_job)
    a_before_upload = sum(t <= b_uploaded for t in a_done)
    a_before_b = sum(t < b_done for t in a_done)
    waiting_at_upload = BACKLOG - a_before_upload
    numbers = {
        "USER_CONVERSIONS_AT_ONCE": at_once,
        "A jobs done before B uploaded": a_before_upload,
        "A jobs done after B uploaded, before B's job": a_before_b - a_before_upload,
        "B's place among the 11 conversions": a_before_b + 1,
        "B waited (s)": round(b_done - b_uploaded, 2),
        "A's backlog took (s)": round(a_done[-1] - started, 2),
        "A's jobs still waiting when B's was done": BACKLOG - a_before_b,
    }
    print("\nfairness:", numbers)
    assert waiting_at_upload >= 5, f"A's backlog was nearly done before B uploaded: {numbers}"
    if at_once < BACKLOG:
        # B's job waits for at most the A jobs already in the queue, not for A's backlog.
        assert a_before_b - a_before_upload <= at_once, numbers
        assert b_done < a_done[-1], numbers
    else:
        assert a_before_b == BACKLOG, numbers  # without the limit, B comes last
    account = call(stack, "GET", "/account", a_jwt).json()
    assert account["jobs"]["done"] == BACKLOG and account["usage"]["active_jobs"] == 0
