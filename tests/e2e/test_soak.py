"""A minute of the chaos soak (`make soak` runs ten): users upload through two gateways while
every kind of fault strikes once; every accepted upload then ends once, done with one MP3 and
one email or failed with a reason and one email, or deleted by its user."""

import time

import pytest

from tools.soak import faults
from tools.soak.runner import Settings, run

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

SEED = 20261203
SECONDS = 60


def test_a_minute_of_every_fault_loses_and_duplicates_nothing(service_dirs):
    started = time.monotonic()
    report = run(Settings(seconds=SECONDS, seed=SEED, users=8, pause=(3.0, 12.0),
                          directory=service_dirs.new("soak")), echo=False)
    took = time.monotonic() - started
    findings = "\n".join(f"{f['category']}: {f['what']} ({f['filename']})"
                         for f in report["findings"])
    assert report["lost"] == 0, findings
    assert report["duplicated"] == 0, findings
    assert report["unexplained"] == 0, findings

    # Every kind of fault struck, none was cut short, and each took its toll as expected.
    events = report["faults"]["events"]
    assert set(report["faults"]["by_kind"]) == set(faults.KINDS), report["faults"]
    assert not report["faults"]["skipped"] and all(not e["note"] for e in events), events
    assert all(e["start"] < e["end"] for e in events)
    assert all(later["start"] >= earlier["end"]
               for earlier, later in zip(events, events[1:], strict=False))
    killed = {e["target"] for e in events if e["kind"].startswith("kill_")}
    assert all(report["restarts"][name] >= 1 for name in killed), report["restarts"]

    # The numbers add up: what was accepted ended done, failed or deleted.
    uploads, outcomes = report["uploads"], report["outcomes"]
    assert uploads["accepted"] >= 20, uploads
    assert outcomes.get("done", 0) >= 10 and outcomes.get("failed", 0) >= 1, outcomes
    assert uploads["accepted"] + uploads["unanswered_kept_as_job"] == (
        outcomes.get("done", 0) + outcomes.get("failed", 0) + outcomes.get("deleted", 0))
    latency = report["accepted_to_email_seconds"]
    assert latency["count"] >= 10
    assert 0 < latency["p50"] <= latency["p95"] <= latency["max"] < 180, latency
    worst = report["worst_fault_wait"]
    assert worst is None or 0 <= worst["seconds"] <= latency["max"], worst
    assert report["drain"]["seconds"] < 120, report["drain"]
    print(f"soak of {SECONDS} s took {took:.0f} s in all: {report['timings']}")
