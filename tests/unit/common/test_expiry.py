"""One rule for an MP3 past its retention (common.jobs.is_expired), which every view answers 410."""

import time

import pytest

from common.jobs import is_expired


@pytest.mark.parametrize("job, expired", [
    ({"status": "expired", "expires_at": time.time() + 3600}, True),  # the sweep marked it
    ({"status": "expired"}, True),
    ({"status": "done", "expires_at": time.time() - 1}, True),  # before the sweep marks it
    ({"status": "done", "expires_at": time.time() + 3600}, False),
    ({"status": "done", "expires_at": None}, False),  # no retention recorded
    ({"status": "done"}, False),
    ({"status": "failed", "expires_at": time.time() - 1}, False),
    ({"status": "converting"}, False),
])
def test_a_job_is_expired_once_marked_or_past_its_expiry_when_done(job, expired):
    assert is_expired(job) is expired
