"""What an operator sees in a real Prometheus scraping every service of a running stack."""

import json
import socket
import urllib.parse
import urllib.request

import pytest
import requests

from ops import backup_status
from tests.e2e.api import classic_upload, wait_for_job
from tools.monitoring import alerts, rules_file, used_metric_names
from tools.prometheus import pushgateway_process

pytestmark = pytest.mark.e2e

SERVICES = ("auth", "gateway", "converter", "notification")
CORRUPT = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 200  # passes the upload's sniff


def exposed_names(metrics_url: str) -> set[str]:
    """The sample names a /metrics page declares (``# TYPE`` lines), whether or not a value
    has been recorded yet: a histogram ``x`` gives ``x_bucket``, ``x_sum`` and ``x_count``."""
    names = set()
    for line in requests.get(metrics_url, timeout=10).text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= ({f"{name}_bucket", f"{name}_sum", f"{name}_count"}
                      if kind == "histogram" else {name})
    return names


def test_prometheus_sees_conversions_uploads_requests_emails_and_logins(
        stack_factory, prometheus, rabbitmq_node, mailsink, media, tmp_path):
    stack = stack_factory()
    assert set(stack.metrics_urls) == set(SERVICES)
    ports = {url.split(":")[2].split("/")[0] for url in stack.metrics_urls.values()}
    assert len(ports) == 4, stack.metrics_urls  # each service its own, none the public port
    assert not ports & {stack.gateway_url.rsplit(":", 1)[1], stack.auth_url.rsplit(":", 1)[1]}
    # RabbitMQ's own rabbitmq_prometheus plugin, as the monitoring component scrapes it
    prom = prometheus({**stack.metrics_urls, "rabbitmq": rabbitmq_node.prometheus_url},
                      rules=rules_file())
    prom.wait_for('sum(up{job="mp3converter"})', lambda v: v == 5)

    email, jwt = stack.user()
    no_token = requests.get(f"{stack.gateway_url}/jobs", timeout=10)
    assert no_token.status_code == 401
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(CORRUPT)
    files = {"good": media("mov"), "silent": media("no_audio"), "corrupt": corrupt}
    job_ids = {}
    for name, path in files.items():
        status, accepted = classic_upload(stack, jwt, path)
        assert status == 202, (name, accepted)
        job_ids[name] = accepted["job_id"]
    jobs = {name: wait_for_job(stack, jwt, job_id, timeout=90) for name, job_id in job_ids.items()}
    assert [jobs[n]["status"] for n in files] == ["done", "failed", "failed"], jobs
    mp3 = requests.get(f"{stack.gateway_url}/download", params={"fid": jobs["good"]["mp3_fid"]},
                       headers={"Authorization": f"Bearer {jwt}"}, timeout=30)
    assert mp3.status_code == 200 and mp3.content
    mailsink.wait_for(3, to=email, timeout=60)

    def conversions(outcome, reason=None):
        labels = f'outcome="{outcome}"' + (f',reason="{reason}"' if reason is not None else "")
        return f"sum(mp3converter_conversions_total{{{labels}}})"

    prom.wait_for(conversions("done"), lambda v: v == 1)
    prom.wait_for(conversions("failed", "no_audio"), lambda v: v == 1)
    prom.wait_for(conversions("failed", "not_media"), lambda v: v >= 1)
    prom.wait_for(conversions("failed"), lambda v: v == 2)  # no other reason classes
    prom.wait_for('mp3converter_conversion_duration_seconds_count{service="converter"}',
                  lambda v: v == 1)
    prom.wait_for('mp3converter_converted_media_seconds_total{service="converter"}',
                  lambda v: abs(v - jobs["good"]["duration"]) < 0.5)
    prom.wait_for('mp3converter_conversion_mode_total{mode="encode"}', lambda v: v == 1)
    uploaded = sum(path.stat().st_size for path in files.values())
    prom.wait_for('mp3converter_upload_bytes_total{service="gateway"}',
                  lambda v: v == uploaded)
    prom.wait_for('mp3converter_download_bytes_total{service="gateway"}',
                  lambda v: v == len(mp3.content))
    prom.wait_for('sum(mp3converter_uploads_total{outcome="accepted"})', lambda v: v == 3)
    prom.wait_for('sum(mp3converter_http_requests_total{service="gateway",route="/upload",'
                  'method="POST",status="202"})', lambda v: v == 3)
    prom.wait_for('sum(mp3converter_http_requests_total{service="gateway",route="/jobs",'
                  'method="GET",status="401"})', lambda v: v >= 1)
    prom.wait_for('sum(mp3converter_http_requests_total{service="gateway",'
                  'route="/jobs/<job_id>",status="200"})', lambda v: v >= 3)
    prom.wait_for('sum(mp3converter_refusals_total{service="gateway",reason="unauthorized"})',
                  lambda v: v >= 1)
    prom.wait_for('sum(mp3converter_http_request_duration_seconds_count{service="auth",'
                  'route="/validate"})', lambda v: v >= 3)
    prom.wait_for('sum(mp3converter_logins_total{service="auth",outcome="ok"})',
                  lambda v: v >= 1)
    prom.wait_for('sum(mp3converter_password_hash_duration_seconds_count{service="auth"})',
                  lambda v: v >= 2)  # the registration's hash and the login's check
    prom.wait_for('sum(mp3converter_emails_total{service="notification",outcome="sent"})',
                  lambda v: v == 3)
    prom.wait_for('mp3converter_emails_total{kind="failed",outcome="sent"}', lambda v: v == 2)
    prom.wait_for('mp3converter_smtp_duration_seconds_count{service="notification"}',
                  lambda v: v == 3)
    prom.wait_for('mp3converter_jobs_queued{service="converter"}', lambda v: v == 0)
    prom.wait_for('mp3converter_oldest_queued_job_age_seconds{service="converter"}',
                  lambda v: v == 0)
    prom.wait_for('sum(mp3converter_uploads_in_progress)', lambda v: v == 0)
    prom.wait_for('sum(mp3converter_consumer_connected)', lambda v: v == 2)
    prom.wait_for('min(time() - mp3converter_consumer_last_heartbeat_timestamp_seconds)',
                  lambda v: v < 30)

    # the queues an operator watches, for this stack's vhost: the two bad files failed their
    # jobs (their owner told), nothing waits for an operator in the dead-letter queue
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(stack.env["RABBITMQ_URL"]).path[1:])
    queue = f'vhost="{vhost}",queue'
    prom.wait_for(f'sum(rabbitmq_queue_messages_ready{{{queue}="video"}})', lambda v: v == 0)
    prom.wait_for(f'sum(rabbitmq_queue_consumers{{{queue}="video"}})', lambda v: v == 1)
    prom.wait_for(f'sum(rabbitmq_queue_messages_ready{{{queue}="video.dlq"}})', lambda v: v == 0)

    # every metric the alerts and the dashboard read is one the processes really expose, or
    # one the backup Job really pushes (its code, to a real Pushgateway)
    exposed = set().union(*(exposed_names(url) for url in stack.metrics_urls.values()))
    pushgateway = pushgateway_process(tmp_path / "pushgateway")
    pushgateway.start().wait_ready(30)
    try:
        url = f"http://127.0.0.1:{pushgateway.port}"
        backup_status.push(url, {"ok": True, "verified": True, "bytes": 1,
                                 "finished_at": "2026-01-01T00:00:00Z",
                                 "duration_seconds": 1.0}, 0.0, 0.0)
        exposed |= exposed_names(f"{url}/metrics")
    finally:
        pushgateway.terminate(10)
    with urllib.request.urlopen(f"{prom.url}/api/v1/label/__name__/values", timeout=10) as resp:
        exposed |= set(json.load(resp)["data"])
    missing = used_metric_names() - exposed
    assert not missing, f"the rules or the dashboard read metrics nothing exposes: {missing}"
    # and Prometheus evaluates every alert on these real series without an error
    with urllib.request.urlopen(f"{prom.url}/api/v1/rules", timeout=10) as resp:
        loaded = [rule for group in json.load(resp)["data"]["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in loaded} == {alert["alert"] for alert in alerts()}
    assert all(rule["health"] == "ok" for rule in loaded), loaded

    series = prom.query('{__name__=~"mp3converter_.+"}')
    assert {s["metric"]["service"] for s in series} == set(SERVICES)
    secrets = [email, *job_ids.values(), jobs["good"]["mp3_fid"], "broken.mp4", "silent.mp4"]
    leaks = [s["metric"] for s in series
             if any(secret in value for value in s["metric"].values() for secret in secrets)]
    assert not leaks, leaks


def test_metrics_listen_only_on_the_address_the_service_was_given(stack):
    """The stack runs every service with HOST=127.0.0.1: its metrics answer there and refuse
    127.0.0.2 (another address of this machine, which a socket on 0.0.0.0 would accept)."""
    assert stack.env["HOST"] == "127.0.0.1"
    assert set(stack.metrics_urls) == set(SERVICES)
    for service, url in stack.metrics_urls.items():
        port = int(urllib.parse.urlsplit(url).port)
        assert requests.get(url, timeout=10).status_code == 200, service
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", port), timeout=5).close()
            pytest.fail(f"{service}: metrics on port {port} reachable on 127.0.0.2")
