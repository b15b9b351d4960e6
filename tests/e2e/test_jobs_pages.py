"""GET /jobs in pages over HTTP, against the real gateway and nx-27017: following `next` (or the
Link header) lists every job once, jobs created at the same instant included; bad limits and
cursors are 400; a cursor never reaches past the caller's own jobs."""

from __future__ import annotations

import base64
import time
from urllib.parse import urljoin

import pytest
from bson import ObjectId

from tests.e2e.storage import call, database

pytestmark = pytest.mark.e2e
PASSWORD = "pages password 1"


def seed(stack, owner: str, count: int, created_at: float | None = None,
         prefix: str = "seeded") -> list[ObjectId]:
    """``count`` failed jobs of ``owner`` stored directly, all created at ``created_at`` (or one
    millisecond apart, the first oldest); their ids, oldest first."""
    base = created_at if created_at is not None else time.time() - count
    ids = [ObjectId() for _ in range(count)]
    with database(stack) as db:
        db["jobs"].insert_many([{
            "_id": oid, "owner": owner, "status": "failed", "filename": f"{prefix}-{i:03d}.mp4",
            "size": 1000, "progress": 0, "options": {}, "error": "seeded for the list",
            "created_at": base if created_at is not None else round(base + i * 0.001, 3),
            "updated_at": base} for i, oid in enumerate(ids)])
    return ids


def walk(stack, jwt: str, limit: int, *, by_link: bool = False) -> list[list[str]]:
    """The job ids of every page, following `next` (or the Link header)."""
    pages, url = [], f"/jobs?limit={limit}"
    while True:
        resp = call(stack, "GET", url, jwt)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages.append([job["job_id"] for job in body["jobs"]])
        if body["next"] is None:
            assert "Link" not in resp.headers
            return pages
        link = resp.links["next"]["url"]
        assert link == f"/jobs?limit={limit}&cursor={body['next']}"
        url = urljoin(url, link) if by_link else f"/jobs?limit={limit}&cursor={body['next']}"


def test_250_jobs_created_at_the_same_instant_are_each_listed_once(stack):
    _email, jwt = stack.user(PASSWORD)
    owner = stack.account_id(jwt)
    ids = seed(stack, owner, 250, created_at=round(time.time(), 3))
    everyone = sorted((str(oid) for oid in ids), reverse=True)

    pages = walk(stack, jwt, 60)
    assert [len(page) for page in pages] == [60, 60, 60, 60, 10]
    assert [job for page in pages for job in page] == everyone
    assert [job for page in walk(stack, jwt, 1, by_link=True) for job in page] == everyone

    # No limit: the newest 200, as the list answered before it had pages, and where to go on.
    first = call(stack, "GET", "/jobs", jwt).json()
    assert [job["job_id"] for job in first["jobs"]] == everyone[:200]
    rest = call(stack, "GET", f"/jobs?cursor={first['next']}", jwt).json()
    assert [job["job_id"] for job in rest["jobs"]] == everyone[200:] and rest["next"] is None


def test_newer_jobs_arriving_meanwhile_do_not_shift_the_older_pages(stack):
    _email, jwt = stack.user(PASSWORD)
    owner = stack.account_id(jwt)
    ids = seed(stack, owner, 30)
    first = call(stack, "GET", "/jobs?limit=10", jwt).json()
    seed(stack, owner, 5, created_at=time.time() + 60, prefix="newer")
    second = call(stack, "GET", f"/jobs?limit=10&cursor={first['next']}", jwt).json()
    assert [job["job_id"] for job in first["jobs"] + second["jobs"]] == [
        str(oid) for oid in reversed(ids)][:20]


def test_a_bad_limit_is_400_naming_the_limit(stack):
    _email, jwt = stack.user(PASSWORD)
    for limit in ("0", "201", "-3", "abc", "2.5", "1e3", "%20"):
        resp = call(stack, "GET", f"/jobs?limit={limit}", jwt)
        assert resp.status_code == 400, (limit, resp.text)
        assert resp.json() == {"error": "limit must be a whole number from 1 to 200"}


def test_a_malformed_or_altered_cursor_is_400_never_500(stack):
    _email, jwt = stack.user(PASSWORD)
    seed(stack, stack.account_id(jwt), 3)
    good = call(stack, "GET", "/jobs?limit=1", jwt).json()["next"]
    raw = bytearray(base64.urlsafe_b64decode(good))
    raw[0] = 7  # another version: not a cursor of this API
    for cursor in ("garbage", good[:-2], good + "AA", base64.urlsafe_b64encode(raw).decode(),
                   "%FF%FE", "A" * 28, "~" * 28):
        resp = call(stack, "GET", f"/jobs?cursor={cursor}", jwt)
        assert resp.status_code == 400, (cursor, resp.text)
        assert resp.json()["error"].startswith("cursor is not valid"), resp.text


def test_a_cursor_only_positions_the_callers_own_list(stack):
    _email, alice = stack.user(PASSWORD)
    _email, bob = stack.user(PASSWORD)
    hers = seed(stack, stack.account_id(alice), 6, prefix="alice")
    his = seed(stack, stack.account_id(bob), 6, prefix="bob")
    cursor = call(stack, "GET", "/jobs?limit=2", alice).json()["next"]
    answer = call(stack, "GET", f"/jobs?limit=200&cursor={cursor}", bob).json()
    listed = [job["job_id"] for job in answer["jobs"]]
    assert not set(listed) & {str(oid) for oid in hers}
    assert set(listed) <= {str(oid) for oid in his}
