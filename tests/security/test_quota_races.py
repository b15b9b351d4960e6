"""Quotas against uploads sent in parallel: several uploads that each fit alone, but not
together, cannot add up past the storage quota or the limit of conversions waiting."""

from __future__ import annotations

import pytest

from tests.e2e.api import classic_upload
from tests.e2e.rawhttp import multipart, upload_together
from tests.e2e.storage import VIDEOS, call, inventory
from tools.media import make_noise

pytestmark = pytest.mark.security
WEB = ("auth", "gateway")  # no converter: what is accepted stays stored and waiting
PARALLEL = 4


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_parallel_uploads_cannot_add_up_past_the_storage_quota(stack_factory, media_dir,
                                                               chunked):
    video = make_noise(media_dir, 300)
    quota = int(video.stat().st_size * 1.5)  # room for one, not two
    stack = stack_factory(services=WEB, USER_STORAGE_QUOTA_BYTES=str(quota))
    _, jwt = stack.user()
    answers = upload_together([stack.gateway_url], jwt, multipart(video), chunked, PARALLEL)
    statuses = sorted(answer.status for answer in answers)
    print(f"\nparallel uploads ({'chunked' if chunked else 'with length'}): {statuses}")
    assert set(statuses) <= {202, 413} and statuses.count(202) <= 1, statuses
    for answer in answers:
        if answer.status == 413:
            assert "storage quota" in answer.json()["error"]
    stored = inventory(stack)
    assert stored["jobs"] == stored[f"{VIDEOS}.files"] == statuses.count(202), stored
    usage = call(stack, "GET", "/account", jwt).json()["usage"]
    assert usage["bytes"] <= quota and usage["active_jobs"] == statuses.count(202)
    if statuses.count(202) == 0:  # all refused at once: nothing of them holds the room
        assert classic_upload(stack, jwt, video)[0] == 202


def test_parallel_uploads_cannot_pass_the_limit_of_conversions_waiting(stack_factory, media):
    stack = stack_factory(services=WEB, USER_MAX_ACTIVE_JOBS="2")
    _, jwt = stack.user()
    assert classic_upload(stack, jwt, media("mov"))[0] == 202
    body = multipart(media("mov"))  # about 80 KB: a piece, then the rest
    answers = upload_together([stack.gateway_url], jwt, body, False, PARALLEL)
    statuses = sorted(answer.status for answer in answers)
    print(f"\nparallel uploads with one waiting of two allowed: {statuses}")
    assert set(statuses) <= {202, 429} and statuses.count(202) <= 1, statuses
    active = call(stack, "GET", "/account", jwt).json()["usage"]["active_jobs"]
    assert active == 1 + statuses.count(202) == inventory(stack)["jobs"]
    if statuses.count(202) == 0:
        assert classic_upload(stack, jwt, media("mov"))[0] == 202


def test_parallel_uploads_get_every_free_place_and_no_more(stack_factory, media):
    """15 uploads sent at once by a user with 9 of 10 places free: exactly 9 are accepted.
    (Uploads counted against each other in any order refused some of them all the same:
    7 of 15 got through.)"""
    stack = stack_factory(services=WEB, USER_MAX_ACTIVE_JOBS="10")
    _, jwt = stack.user()
    assert classic_upload(stack, jwt, media("mov"))[0] == 202
    body = multipart(media("mov"))
    for _ in range(2):  # the second once the first round's are deleted: the places free again
        answers = upload_together([stack.gateway_url], jwt, body, False, 15)
        statuses = sorted(answer.status for answer in answers)
        print(f"\n15 parallel uploads with 9 of 10 places free: {statuses}")
        assert statuses == [202] * 9 + [429] * 6, statuses
        for answer in answers:
            if answer.status == 429:
                assert answer.json()["error"].startswith("you have 10 conversions waiting")
        active = call(stack, "GET", "/account", jwt).json()["usage"]["active_jobs"]
        assert active == 10 == inventory(stack)["jobs"]
        for answer in answers:
            if answer.status == 202:
                job_id = answer.json()["job_id"]
                assert call(stack, "DELETE", f"/jobs/{job_id}", jwt).status_code == 204


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_parallel_uploads_fill_the_storage_quota_and_no_more(stack_factory, media_dir,
                                                              chunked):
    """8 uploads sent at once, with room for 3 of them: exactly 3 are accepted."""
    video = make_noise(media_dir, 300)
    quota = int(video.stat().st_size * 3.5)
    stack = stack_factory(services=WEB, USER_STORAGE_QUOTA_BYTES=str(quota))
    _, jwt = stack.user()
    answers = upload_together([stack.gateway_url], jwt, multipart(video), chunked, 8)
    statuses = sorted(answer.status for answer in answers)
    print(f"\n8 parallel uploads ({'chunked' if chunked else 'with length'}) with room for 3: "
          f"{statuses}")
    assert statuses == [202] * 3 + [413] * 5, statuses
    stored = inventory(stack)
    assert stored["jobs"] == stored[f"{VIDEOS}.files"] == 3, stored
    usage = call(stack, "GET", "/account", jwt).json()["usage"]
    assert usage == {"bytes": 3 * video.stat().st_size, "active_jobs": 3}
