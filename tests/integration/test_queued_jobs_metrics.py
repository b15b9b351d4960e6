"""The queued-jobs gauges: every converter reads them from MongoDB (nx-27017) at each scrape,
leaves them out while MongoDB does not answer, and the gateway's master starts no process."""

import signal
import time
from pathlib import Path

import pytest
import requests
from bson import ObjectId
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Pipeline

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

QUEUED = "mp3converter_jobs_queued"
OLDEST = "mp3converter_oldest_queued_job_age_seconds"


def scrape(url: str) -> dict[str, dict]:
    """The samples of a /metrics page: name -> {"labels": ..., "value": ...} (the last one)."""
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    return {sample.name: {"labels": sample.labels, "value": sample.value}
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def test_every_converter_reports_the_queued_jobs_it_reads_from_mongodb(stack_factory, media,
                                                                       user):
    pipe = Pipeline(stack_factory(services=("converter",), scale={"converter": 2}))
    try:
        urls = pipe.stack.metrics_urls
        assert set(urls) == {"converter", "converter-2"}
        for url in urls.values():
            samples = scrape(url)
            assert samples[QUEUED] == {"labels": {"service": "converter"}, "value": 0.0}
            assert samples[OLDEST] == {"labels": {"service": "converter"}, "value": 0.0}

        # recorded but not published: they stay queued, no converter takes them
        first = pipe.upload(media("mov"), user, "first.mov", queue=False)
        pipe.upload(media("mkv_mp3"), user, "second.mkv", queue=False)
        created = time.time() - 300
        pipe.store.jobs.update_one({"_id": ObjectId(first.job_id)},
                                   {"$set": {"created_at": created}})
        for url in urls.values():
            samples = scrape(url)
            assert samples[QUEUED]["value"] == 2.0
            assert 300 <= samples[OLDEST]["value"] < 300 + 30
            assert samples[OLDEST]["labels"] == {"service": "converter"}
    finally:
        pipe.close()


def test_a_converter_leaves_the_gauges_out_while_mongodb_does_not_answer(pipeline_factory,
                                                                        mongodb_server):
    pipe = pipeline_factory("converter")
    url = pipe.stack.metrics_urls["converter"]
    assert scrape(url)[QUEUED]["value"] == 0.0
    mongodb_server.send_signal(signal.SIGSTOP)  # frozen: connections open, nothing answers
    try:
        started = time.monotonic()
        samples = scrape(url)
        took = time.monotonic() - started
    finally:
        mongodb_server.send_signal(signal.SIGCONT)
    assert QUEUED not in samples and OLDEST not in samples
    assert samples["mp3converter_consumer_connected"]["value"] == 1.0  # the rest is served
    assert took < 5, f"the scrape waited {took:.1f} s for MongoDB"
    pipe.wait_log("converter", "could not count queued jobs")
    deadline = time.monotonic() + 30
    while QUEUED not in (samples := scrape(url)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert samples[QUEUED]["value"] == 0.0  # back once MongoDB answers


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_the_gateway_master_serves_its_workers_metrics_and_starts_no_process(stack_factory):
    stack = stack_factory(services=("gateway",))
    master = stack.processes["gateway"]
    pages = [scrape(stack.metrics_urls["gateway"]) for _ in range(3)]
    # only its forked workers, each running gunicorn as the master does
    workers = children(master.pid)
    assert len(workers) == int(stack.env["WEB_WORKERS"]), workers
    argv = Path(f"/proc/{master.pid}/cmdline").read_bytes()
    assert [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in workers] == [argv] * len(workers)
    for samples in pages:
        assert QUEUED not in samples and OLDEST not in samples
        assert "mp3converter_http_requests_total" in samples  # the readiness checks
