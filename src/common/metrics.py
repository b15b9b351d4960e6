"""Prometheus metrics of every service, served on METRICS_PORT (never on the public port).

Every metric carries a ``service`` label, set once per process by ``configure``. No label ever
holds a job id, an email, a file name or a path: routes are URL rule templates, reasons and
outcomes come from small fixed sets.

Consumers serve their registry from a thread (``serve``). auth and gateway run several gunicorn
workers: each worker writes its values to files in PROMETHEUS_MULTIPROC_DIR (set by
common.gunicorn_conf before any worker imports this module) and the gunicorn master serves
them all, summed (``serve_multiprocess``); a dead worker's live gauges are dropped
(``mark_process_dead``). The converter also serves the queued jobs gauges, read from MongoDB
at each scrape (``report_queued_jobs``).
"""

from __future__ import annotations

import logging
import time

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

PREFIX = "mp3converter_"
_service = "unknown"


def configure(service: str) -> None:
    """Name the service every metric of this process is labelled with."""
    global _service
    _service = service


def service() -> str:
    """The ``service`` label of this process."""
    return _service


class Family:
    """A metric whose first label is the process's ``service``; ``labels`` takes the others.

    Metrics without labels of their own are used directly: ``UPLOAD_BYTES.inc(n)``.
    """

    def __init__(self, kind, name: str, documentation: str, labelnames=(), **kwargs):
        self.name = PREFIX + name
        self.metric = kind(self.name, documentation, ("service", *labelnames), **kwargs)

    def labels(self, *values: str):
        """The child for this process's service and ``values``."""
        return self.metric.labels(_service, *values)

    def inc(self, amount: float = 1) -> None:
        self.labels().inc(amount)

    def dec(self, amount: float = 1) -> None:
        self.labels().dec(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def time(self):
        """Context manager observing the seconds its block took."""
        return self.labels().time()

    def track_inprogress(self):
        """Context manager counting its block while it runs (gauges)."""
        return self.labels().track_inprogress()


SLOW_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
HASH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)

# -- HTTP (auth, gateway) -------------------------------------------------------------------------
HTTP_REQUESTS = Family(Counter, "http_requests_total", "HTTP requests answered",
                       ("route", "method", "status"))
HTTP_DURATION = Family(Histogram, "http_request_duration_seconds",
                       "Time from a request's arrival to the last byte of its answer",
                       ("route", "method"), buckets=HTTP_BUCKETS)
# -- gateway --------------------------------------------------------------------------------------
UPLOAD_BYTES = Family(Counter, "upload_bytes_total", "Bytes of accepted uploads stored")
DOWNLOAD_BYTES = Family(Counter, "download_bytes_total", "MP3 bytes sent")
UPLOADS_IN_PROGRESS = Family(Gauge, "uploads_in_progress", "Upload bodies being received",
                             multiprocess_mode="livesum")
UPLOADS = Family(Counter, "uploads_total", "Upload requests by outcome (accepted, refused)",
                 ("outcome",))
REFUSALS = Family(Counter, "refusals_total", "Requests refused, by reason", ("reason",))
# -- converter ------------------------------------------------------------------------------------
CONVERSIONS = Family(Counter, "conversions_total",
                     "Conversions by outcome and, unless done or cancelled, reason class",
                     ("outcome", "reason"))
CONVERSION_DURATION = Family(Histogram, "conversion_duration_seconds",
                             "Wall time of a successful conversion", buckets=SLOW_BUCKETS)
CONVERTED_MEDIA_SECONDS = Family(Counter, "converted_media_seconds_total",
                                 "Seconds of media converted")
CONVERSION_MODE = Family(Counter, "conversion_mode_total",
                         "Conversions by mode: copy (already MP3) or encode", ("mode",))
JOBS_IN_PROGRESS = Family(Gauge, "jobs_in_progress", "Jobs being converted",
                          multiprocess_mode="livesum")
# -- notification ---------------------------------------------------------------------------------
EMAILS = Family(Counter, "emails_total", "Job emails by kind (ready, failed) and outcome",
                ("kind", "outcome"))
SMTP_DURATION = Family(Histogram, "smtp_duration_seconds", "Time to hand one email to SMTP")
WEBHOOK_ATTEMPTS = Family(Counter, "webhook_attempts_total",
                          "Webhook delivery attempts by outcome (delivered, failed) and event",
                          ("outcome", "event"))
WEBHOOK_DURATION = Family(Histogram, "webhook_attempt_duration_seconds",
                          "Time of one webhook delivery attempt, until its answer or error",
                          buckets=HTTP_BUCKETS)
WEBHOOK_ENDPOINTS_DISABLED = Family(Counter, "webhook_endpoints_disabled_total",
                                    "Webhook endpoints disabled after failing in a row")
# -- auth -----------------------------------------------------------------------------------------
LOGINS = Family(Counter, "logins_total", "Logins by outcome", ("outcome",))
PASSWORD_HASH_DURATION = Family(Histogram, "password_hash_duration_seconds",
                                "Time of one argon2 hash or verification", buckets=HASH_BUCKETS)
PASSWORD_HASHES_IN_PROGRESS = Family(Gauge, "password_hashes_in_progress",
                                     "argon2 operations running", multiprocess_mode="livesum")
PASSWORD_HASH_REFUSALS = Family(Counter, "password_hash_refusals_total",
                                "Password checks refused (503) because every argon2 slot "
                                "stayed busy")
# -- consumers ------------------------------------------------------------------------------------
CONSUMER_HEARTBEAT = Family(Gauge, "consumer_last_heartbeat_timestamp_seconds",
                            "Unix time of the consumer loop's last turn", multiprocess_mode="max")
CONSUMER_CONNECTED = Family(Gauge, "consumer_connected",
                            "1 while consuming from the broker (every queue of the service)",
                            multiprocess_mode="livemax")

# -- refusals: the one mapping from an HTTP status to the reason an operator reads ----------------
QUOTA = "quota"
REFUSAL_REASONS = {401: "unauthorized", 403: "forbidden", 413: "too_large",
                   415: "unsupported_media", 400: "invalid", 422: "invalid",
                   429: "rate_limited", 503: "unavailable"}
REFUSAL_ATTRIBUTE = "refusal_reason"  # set on a response to name another reason (QUOTA)


def refusal_reason(response) -> str | None:
    """Why this response refuses the request, or None when it does not."""
    return getattr(response, REFUSAL_ATTRIBUTE, None) or REFUSAL_REASONS.get(response.status_code)


def refused_for(response, reason: str):
    """Mark ``response`` as a refusal for ``reason`` (instead of its status's); returns it."""
    setattr(response, REFUSAL_ATTRIBUTE, reason)
    return response


# -- HTTP instrumentation -------------------------------------------------------------------------
ROUTE_KEY = "mp3converter.route"  # WSGI environ: the URL rule template, set by Flask's hooks
BYTES_KEY = "mp3converter.body_counter"  # WSGI environ: a Family counting the body's bytes
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def instrument(app, refusals: bool = False) -> None:
    """Record every request of a Flask app: route template, method, status and the time until
    its answer's last byte (streamed downloads included); ``refusals`` counts refused requests
    by reason too (the gateway)."""
    from flask import request

    @app.after_request
    def _route(response):
        request.environ[ROUTE_KEY] = request.url_rule.rule if request.url_rule else UNMATCHED
        if refusals:
            reason = refusal_reason(response)
            if reason:
                REFUSALS.labels(reason).inc()
        return response

    app.wsgi_app = TimedApp(app.wsgi_app)


def count_body_bytes(counter: Family) -> None:
    """Count the bytes of the current request's answer body into ``counter`` as they are sent."""
    from flask import request

    request.environ[BYTES_KEY] = counter


class TimedApp:
    """WSGI middleware measuring each request until its body is sent (or the client left)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        status = ["500"]

        def start(status_line, headers, exc_info=None):
            status[0] = status_line.split(" ", 1)[0]
            return start_response(status_line, headers, exc_info)

        try:
            body = self.app(environ, start)
        except BaseException:
            _record(environ, "500", started, 0)
            raise
        return _Body(body, lambda sent: _record(environ, status[0], started, sent))


class _Body:
    """The answer's iterable, counting what is sent and recording once it is closed."""

    def __init__(self, body, done):
        self._body, self._done, self._sent, self._closed = body, done, 0, False
        self._iter = iter(body)

    def __iter__(self):
        return self

    def __next__(self):
        chunk = next(self._iter)
        self._sent += len(chunk)
        return chunk

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(self._sent)


def _record(environ, status: str, started: float, sent: int) -> None:
    try:
        route = environ.get(ROUTE_KEY, UNMATCHED)
        method = environ.get("REQUEST_METHOD", "")
        method = method if method in METHODS else "other"
        HTTP_REQUESTS.labels(route, method, status).inc()
        HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)
        counter = environ.get(BYTES_KEY)
        if counter is not None and sent:
            counter.inc(sent)
    except Exception:  # noqa: BLE001 - never fail a request for its metrics
        log.warning("could not record request metrics", exc_info=True)


# -- serving --------------------------------------------------------------------------------------
def serve(port: int, host: str) -> bool:
    """Serve this process's metrics on ``host``:``port`` from a thread (consumers); port 0
    serves nothing."""
    if not port:
        return False
    start_http_server(port, host)
    log.info("serving metrics", extra={"host": host, "port": port})
    return True


def serve_multiprocess(port: int, *, host: str) -> CollectorRegistry:
    """In the gunicorn master: serve every worker's values (from PROMETHEUS_MULTIPROC_DIR)
    on ``host``:``port``."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, host, registry=registry)
    log.info("serving metrics of every worker", extra={"host": host, "port": port})
    return registry


def mark_process_dead(pid: int) -> None:
    """Drop the live gauges of a worker that exited (gunicorn ``child_exit``)."""
    multiprocess.mark_process_dead(pid)


class QueuedJobsCollector:
    """``jobs_queued`` and ``oldest_queued_job_age_seconds``, asked of MongoDB at each scrape
    (``jobs``: a common.jobs.Jobs). When MongoDB fails or takes over ``timeout`` seconds the
    two gauges are left out of that scrape; everything else is still served. Every process
    that reports them reports the same values: read them with ``max``.
    """

    def __init__(self, jobs, timeout: float = 2.0):
        self._jobs = jobs
        self.timeout = timeout

    def describe(self):
        return []  # nothing asked at registration

    def collect(self):
        try:
            count, oldest = self._jobs.queued_summary(self.timeout)
        except Exception as exc:  # noqa: BLE001 - /metrics must answer without MongoDB
            log.warning("could not count queued jobs", extra={"error": str(exc)[:300]})
            return
        age = max(0.0, time.time() - oldest) if oldest is not None else 0.0
        for name, help_text, value in (
                ("jobs_queued", "Jobs in status queued", count),
                ("oldest_queued_job_age_seconds", "Age of the oldest queued job, 0 if none", age)):
            family = GaugeMetricFamily(PREFIX + name, help_text, labels=["service"])
            family.add_metric([_service], value)
            yield family


def report_queued_jobs(jobs, timeout: float = 2.0) -> QueuedJobsCollector:
    """Serve the queued jobs gauges with this process's other metrics (``serve``)."""
    collector = QueuedJobsCollector(jobs, timeout)
    REGISTRY.register(collector)
    return collector
