"""A real Prometheus server scraping a local stack's metrics, and queries of its HTTP API."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tools.processes import Process, free_port, http_check

PROMETHEUS = Path("/usr/bin/prometheus")
PUSHGATEWAY = Path("/usr/bin/prometheus-pushgateway")  # Debian's prometheus-pushgateway


def prometheus_process(targets: Mapping[str, str], var_dir: Path, interval: str = "1s",
                       port: int | None = None, rules: str | None = None,
                       honor_labels: bool = False) -> Process:
    """Prometheus on ``port`` (default: a free one), its own data directory, scraping every
    metrics URL of ``targets`` (service name -> http://host:port/metrics) every ``interval``
    and evaluating the alerting ``rules`` (a rules file's text) when given; ``honor_labels``
    keeps the labels of what it scrapes (a Pushgateway's ``job``)."""
    var_dir = Path(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    static = [{"targets": [urllib.parse.urlparse(url).netloc], "labels": {"instance_of": name}}
              for name, url in targets.items()]
    config = {"global": {"scrape_interval": interval, "scrape_timeout": interval,
                         "evaluation_interval": interval},
              "scrape_configs": [{"job_name": "mp3converter", "metrics_path": "/metrics",
                                  "honor_labels": honor_labels, "static_configs": static}]}
    if rules is not None:
        (var_dir / "rules.yml").write_text(rules)
        config["rule_files"] = [str(var_dir / "rules.yml")]
    config_path = var_dir / "prometheus.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    argv = [str(PROMETHEUS), f"--config.file={config_path}",
            f"--storage.tsdb.path={var_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    return Process("prometheus", argv, {}, var_dir / "prometheus.log",
                   ready=http_check(f"http://127.0.0.1:{port}/-/ready"), port=port,
                   stop_timeout=10)


def pushgateway_process(var_dir: Path) -> Process:
    """A Prometheus Pushgateway on a free port (``.port``), keeping what batch jobs push."""
    var_dir = Path(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [str(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    return Process("pushgateway", argv, {}, var_dir / "pushgateway.log",
                   ready=http_check(f"http://127.0.0.1:{port}/-/ready"), port=port,
                   stop_timeout=10)


class PrometheusApi:
    """Instant queries against a running Prometheus."""

    def __init__(self, process: Process):
        self.process = process
        self.url = f"http://127.0.0.1:{process.port}"

    def query(self, expr: str) -> list[dict]:
        """The result vector of PromQL ``expr`` now: [{"metric": {...}, "value": float}]."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return [{"metric": item["metric"], "value": float(item["value"][1])}
                for item in body["data"]["result"]]

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` (e.g. a ``sum(...)``), None when it has no result."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} gave {len(result)} series: {result}"
        return result[0]["value"] if result else None

    def wait_for(self, expr: str, check, timeout: float = 30.0) -> float | None:
        """Poll ``expr``'s value until ``check(value)`` holds; fail with the last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.value(expr)
            if value is not None and check(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr} is {value} after {timeout}s")
            time.sleep(0.5)
