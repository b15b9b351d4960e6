"""The benchmark's stored work (measurement 8) looks like what the services leave: the user's
share, finished statuses, retention and the public view; its rows mark a cost that grows."""

import random

import pytest

from bench import scale
from common.jobs import Status, is_expired
from gateway.jobs import job_json

OWNERS = ["me"] + [f"other-{i}" for i in range(99)]
MOMENT = 2_000_000_000.0


def _jobs(count: int = 2000) -> list[dict]:
    return scale.stored_jobs(count, OWNERS, random.Random(1), moment=MOMENT)


def test_a_tenth_of_the_stored_jobs_are_the_users_and_the_rest_spread_over_the_others():
    docs = _jobs()
    assert sum(d["owner"] == "me" for d in docs) == 200
    assert len({d["owner"] for d in docs}) > 90
    assert len({d["_id"] for d in docs}) == len(docs)


def test_stored_jobs_are_finished_mostly_done_or_expired_and_read_as_their_status():
    docs = _jobs()
    counts = {status: sum(d["status"] == status for d in docs) for status in Status}
    assert counts[Status.QUEUED] == counts[Status.CONVERTING] == 0
    assert counts[Status.FAILED] < counts[Status.DONE] < counts[Status.EXPIRED]
    assert counts[Status.FAILED] > 0
    for doc in docs:
        age = MOMENT - doc["created_at"]
        assert 0 < age <= scale.WEEKS * 7 * 86400
        if doc["status"] == Status.DONE:
            assert doc["expires_at"] > MOMENT and doc["mp3_fid"] and doc["mp3_size"] > 0
        elif doc["status"] == Status.EXPIRED:
            assert doc["expires_at"] < MOMENT and is_expired(doc)
        else:
            assert doc["error"] and "mp3_fid" not in doc


def test_stored_jobs_have_the_public_view_of_real_ones():
    for doc in _jobs(50):
        view = job_json(doc)
        assert view["status"] == doc["status"] and view["created_at"].endswith("Z")
        assert view["options"]["title"]


def test_a_queued_job_is_waiting_for_dispatch():
    doc = scale.queued_job("me")
    assert doc["status"] == Status.QUEUED and doc["dispatched_at"] is None


def test_repetitions_stop_after_the_minimum_once_the_budget_is_spent():
    calls = []
    runs = {name: (lambda n=name: calls.append(n) or {"seconds": 0.0}) for name in "ab"}
    assert [len(v) for v in scale.repeat(runs, 10, budget=-1).values()] == [scale.MIN_REPS] * 2
    assert [len(v) for v in scale.repeat(runs, 10, budget=3600).values()] == [10, 10]
    assert calls[:4] == ["a", "b", "b", "a"]  # the order rotates


def test_a_cost_that_grows_with_the_stored_jobs_misses_the_flat_target():
    times = {(level, ""): {op: [{"seconds": 0.1 * (1 + (op == "dispatch") * level / 1000),
                                 "jobs": 200}]
                           for op in scale.OPERATIONS} for level in scale.LEVELS}
    rows = {r["what"]: r for r in scale.level_rows(times, "", None)}
    flat = rows["GET /account: 100,000 stored jobs / none"]
    grown = rows["dispatch: 100,000 stored jobs / none"]
    assert flat["value"] == 1.0 and flat["ok"] and flat["target"] == "<= 1.5x"
    assert grown["value"] == pytest.approx(101.0) and grown["ok"] is False
    assert "100,000: 10.1 s" in grown["detail"]


def test_the_job_list_is_judged_between_full_pages():
    """An empty list at 0 stored jobs, 200 jobs from 10,000 on: the page's growth is reported,
    and only the cost of a full page as stored work grows is held to the target."""
    cost = {0: 0.01, 10_000: 0.04, 100_000: 0.05}
    times = {(level, ""): {op: [{"seconds": cost[level], "jobs": 200 if level else 0}]
                           for op in scale.OPERATIONS} for level in scale.LEVELS}
    rows = {r["what"]: r for r in scale.level_rows(times, "", None)}
    page = rows["GET /jobs: 10,000 stored jobs / none"]
    grown = rows["GET /jobs: 100,000 stored jobs / 10,000"]
    assert page["value"] == pytest.approx(4.0) and page["ok"] is None and page["target"] is None
    assert grown["value"] == pytest.approx(1.25) and grown["ok"] and grown["target"] == "<= 1.5x"


def test_dispatch_is_split_into_nx_27017s_count_and_what_is_left():
    """nx-27017's fixed cost per aggregation (an empty one) grows 4 ms by 100,000 jobs; a
    dispatch of 4 aggregations that grew 17 ms has 1 ms of its own growth left."""
    empty = {0: 0.001, 10_000: 0.0015, 100_000: 0.005}
    dispatch = {0: 0.010, 10_000: 0.012, 100_000: 0.027}
    times = {(level, ""): {scale.EMPTY: [{"seconds": empty[level]}],
                           "dispatch": [{"seconds": dispatch[level], "aggregations": 4}]}
             for level in scale.LEVELS}
    rows = {r["what"]: r for r in scale.nx_27017_rows(times)}
    count = rows[f"{scale.EMPTY}: 100,000 stored jobs / none"]
    rest = rows["dispatch less that count before each of its aggregations: 100,000 stored jobs"
                " / none"]
    assert count["value"] == pytest.approx(5.0) and count["ok"] is None
    assert rest["value"] == pytest.approx(1.1) and rest["ok"] is None and rest["target"] is None
    assert "27.0 ms - 4 aggregations x 4.0 ms = 11.0 ms" in rest["detail"]
