"""Quotas against uploads sent in parallel: several uploads that each fit alone, but not
together, cannot add up past the storage quota or the limit of conversions waiting."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.api import classic_upload
from tests.e2e.rawhttp import PIECE, multipart, raw_upload
from tests.e2e.storage import VIDEOS, call, inventory
from tools.media import make_noise

pytestmark = pytest.mark.security
WEB = ("auth", "gateway")  # no converter: what is accepted stays stored and waiting
PARALLEL = 4


def upload_together(stack, jwt: str, body: bytes, chunked: bool) -> list:
    """PARALLEL uploads of ``body``, each held after its first piece until all have begun."""
    started = threading.Barrier(PARALLEL, timeout=30)

    def hold(sent: int) -> None:
        if sent == PIECE:
            try:
                started.wait()
            except threading.BrokenBarrierError:
                pass  # another was answered before it sent its first piece

    def one(_):
        return raw_upload(stack, jwt, body, chunked=chunked, stop_after=len(body),
                          while_sending=hold)

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(one, range(PARALLEL)))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_parallel_uploads_cannot_add_up_past_the_storage_quota(stack_factory, media_dir,
                                                               chunked):
    video = make_noise(media_dir, 300)
    quota = int(video.stat().st_size * 1.5)  # room for one, not two
    stack = stack_factory(services=WEB, USER_STORAGE_QUOTA_BYTES=str(quota))
    _, jwt = stack.user()
    answers = upload_together(stack, jwt, multipart(video), chunked)
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
    answers = upload_together(stack, jwt, body, chunked=False)
    statuses = sorted(answer.status for answer in answers)
    print(f"\nparallel uploads with one waiting of two allowed: {statuses}")
    assert set(statuses) <= {202, 429} and statuses.count(202) <= 1, statuses
    active = call(stack, "GET", "/account", jwt).json()["usage"]["active_jobs"]
    assert active == 1 + statuses.count(202) == inventory(stack)["jobs"]
    if statuses.count(202) == 0:
        assert classic_upload(stack, jwt, media("mov"))[0] == 202
