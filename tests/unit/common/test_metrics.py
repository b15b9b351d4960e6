"""The shared HTTP instrumentation and the queued-jobs collector record what they should."""

import time

import pytest
from flask import Flask, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from common import metrics
from common.jobs import Jobs
from common.settings import MongoSettings
from common.store import Store
from common.web import error, register_json_errors
from tools.processes import free_port

SERVICE = "unit-test"


@pytest.fixture
def service():
    before = metrics.service()
    metrics.configure(SERVICE)
    yield SERVICE
    metrics.configure(before)


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, {"service": SERVICE, **labels}) or 0.0


@pytest.fixture
def client(service):
    app = Flask(__name__)
    metrics.instrument(app, refusals=True)
    register_json_errors(app)

    @app.get("/things/<thing_id>")
    def thing(thing_id):
        return {"id": thing_id}

    @app.post("/upload")
    def upload():
        return metrics.refused_for(error(413, "over the storage quota"), metrics.QUOTA)

    @app.get("/secret")
    def secret():
        return error(401, "no token")

    @app.get("/boom")
    def boom():
        raise RuntimeError("broken")

    @app.get("/stream")
    def stream():
        metrics.count_body_bytes(metrics.DOWNLOAD_BYTES)
        return Response((b"x" * 1000 for _ in range(5)), mimetype="audio/mpeg")

    return Buffered(app.test_client())


class Buffered:
    """The Flask test client, reading each answer to its end as an HTTP client does (the
    request is recorded once its body is sent)."""

    def __init__(self, client):
        self._client = client

    def get(self, path):
        return self._client.get(path, buffered=True)

    def post(self, path):
        return self._client.post(path, buffered=True)

    def open(self, path, method):
        return self._client.open(path, method=method, buffered=True)


def requests_total(route, method, status):
    return sample("mp3converter_http_requests_total", route=route, method=method, status=status)


def test_requests_are_counted_by_route_template_method_and_status(client):
    before = requests_total("/things/<thing_id>", "GET", "200")
    for thing in ("a1", "b2", "c3"):
        assert client.get(f"/things/{thing}").status_code == 200
    assert requests_total("/things/<thing_id>", "GET", "200") == before + 3
    assert REGISTRY.get_sample_value("mp3converter_http_requests_total", {
        "service": SERVICE, "route": "/things/a1", "method": "GET", "status": "200"}) is None


def test_unknown_paths_and_methods_share_one_label_each(client):
    before = requests_total("unmatched", "GET", "404")
    before_other = requests_total("unmatched", "other", "405")
    client.get("/no/such/path/1")
    client.get("/no/such/path/2")
    client.open("/things/x", method="BREW")
    assert requests_total("unmatched", "GET", "404") == before + 2
    assert requests_total("unmatched", "other", "405") == before_other + 1


def test_durations_are_observed_per_route(client):
    name = "mp3converter_http_request_duration_seconds_count"
    before = sample(name, route="/things/<thing_id>", method="GET")
    client.get("/things/x")
    assert sample(name, route="/things/<thing_id>", method="GET") == before + 1


def test_unhandled_errors_count_as_500(client):
    before = requests_total("/boom", "GET", "500")
    assert client.get("/boom").status_code == 500
    assert requests_total("/boom", "GET", "500") == before + 1


def test_refusals_are_counted_by_reason(client):
    quota = sample("mp3converter_refusals_total", reason="quota")
    too_large = sample("mp3converter_refusals_total", reason="too_large")
    unauthorized = sample("mp3converter_refusals_total", reason="unauthorized")
    assert client.post("/upload").status_code == 413
    assert client.get("/secret").status_code == 401
    client.get("/things/x")  # 200: no refusal
    client.get("/nothing-here")  # 404: not a refusal either
    assert sample("mp3converter_refusals_total", reason="quota") == quota + 1
    assert sample("mp3converter_refusals_total", reason="too_large") == too_large
    assert sample("mp3converter_refusals_total", reason="unauthorized") == unauthorized + 1


def test_streamed_body_bytes_are_counted_once_sent(client):
    before = sample("mp3converter_download_bytes_total")
    response = client.get("/stream")
    assert len(response.data) == 5000
    assert sample("mp3converter_download_bytes_total") == before + 5000


def test_every_status_maps_to_a_known_reason():
    assert set(metrics.REFUSAL_REASONS.values()) | {metrics.QUOTA} == {
        "unauthorized", "forbidden", "too_large", "unsupported_media", "invalid",
        "rate_limited", "quota", "unavailable"}


class FakeJobs:
    def __init__(self, summary):
        self.summary = summary
        self.calls = 0

    def queued_summary(self, timeout):
        self.calls += 1
        if isinstance(self.summary, Exception):
            raise self.summary
        return self.summary


def collected(collector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_queued_jobs_are_asked_at_scrape_time_only(service):
    jobs = FakeJobs((3, time.time() - 120))
    registry = CollectorRegistry()
    registry.register(metrics.QueuedJobsCollector(jobs))
    assert jobs.calls == 0  # nothing asked at registration
    text = generate_latest(registry).decode()
    assert f'mp3converter_jobs_queued{{service="{SERVICE}"}} 3.0' in text
    age = registry.get_sample_value("mp3converter_oldest_queued_job_age_seconds",
                                    {"service": SERVICE})
    assert 119 <= age < 180
    assert jobs.calls == 2
    generate_latest(registry)
    assert jobs.calls == 3  # asked again at each scrape


def test_no_queued_job_is_age_zero(service):
    text = collected(metrics.QueuedJobsCollector(FakeJobs((0, None))))
    assert f'mp3converter_oldest_queued_job_age_seconds{{service="{SERVICE}"}} 0.0' in text


def test_a_database_failure_leaves_the_gauges_out_and_the_scrape_answers(service):
    down = metrics.QueuedJobsCollector(FakeJobs(TimeoutError("MongoDB is slow")))
    assert "mp3converter_jobs_queued" not in collected(down)
    refused = metrics.QueuedJobsCollector(FakeJobs(ConnectionRefusedError("no MongoDB")))
    assert "mp3converter_oldest_queued_job_age_seconds" not in collected(refused)


def test_the_gauges_are_left_out_in_time_when_mongodb_does_not_answer(service):
    store = Store(MongoSettings(f"mongodb://127.0.0.1:{free_port()}", "mp3test_none"))
    try:
        collector = metrics.QueuedJobsCollector(Jobs(store), timeout=1.0)
        started = time.monotonic()
        assert "mp3converter_jobs_queued" not in collected(collector)
        assert time.monotonic() - started < 5
    finally:
        store.close()


def test_report_queued_jobs_adds_them_to_what_the_process_serves(service):
    collector = metrics.report_queued_jobs(FakeJobs((1, None)))
    try:
        assert REGISTRY.get_sample_value("mp3converter_jobs_queued", {"service": SERVICE}) == 1
    finally:
        REGISTRY.unregister(collector)
