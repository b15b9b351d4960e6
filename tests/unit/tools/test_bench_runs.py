"""`make bench BENCH_ARGS="--runs 3"`: each result is the median of the whole runs, judged
against its target again."""

import math

from bench import report
from bench.__main__ import parse


def _rows(job: float, e2e_extra: float, reported: float) -> list[dict]:
    return [report.row("1", "converter job / raw ffmpeg, 600s clip", job, "<= 1.05x",
                       job <= 1.05, f"job {job}"),
            report.row("5", "upload accepted -> email - raw ffmpeg, 10s clip", e2e_extra,
                       "<= 0.25 s", e2e_extra <= 0.25, "", unit=" s"),
            report.row("1", "converter job / raw ffmpeg, 10s clip", reported, None, None)]


def test_each_result_is_the_median_of_the_runs_judged_against_its_target():
    job, extra, reported = report.combine([_rows(1.10, 0.20, 2.0), _rows(1.02, 0.30, 2.4),
                                           _rows(1.04, 0.22, 1.9)])
    assert (job["value"], job["ok"]) == (1.04, True)  # one run over the target: still met
    assert job["detail"].startswith("median of 3 runs (1.10, 1.02, 1.04); first run: job 1.1")
    assert (extra["value"], extra["ok"], extra["unit"]) == (0.22, True, " s")
    assert (reported["value"], reported["ok"]) == (2.0, None)


def test_a_run_that_failed_a_measurement_makes_it_a_miss():
    failed = _rows(float("nan"), 0.1, 2.0)
    job, extra, _ = report.combine([_rows(1.0, 0.1, 2.0), failed, _rows(1.0, 0.1, 2.0)])
    assert math.isnan(job["value"]) and job["ok"] is False and "failed" in job["detail"]
    assert extra["ok"] is True


def test_runs_are_asked_for_on_the_command_line():
    assert parse(["--quick"]).runs == 1
    assert parse(["--runs", "3", "--only", "1,5"]).runs == 3
