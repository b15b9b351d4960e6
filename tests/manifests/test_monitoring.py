"""The monitoring component: its alerts pass promtool and their unit tests, it renders the
scrape targets, rules and dashboard, its runbook links lead somewhere, and the dashboard and
rules read only metrics the services (or RabbitMQ) define."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.manifests.helpers import (
    COMPONENTS,
    MANIFESTS,
    ROOT,
    combination_dir,
    find,
    kustomize,
    pod_labels,
    pod_templates,
    selects,
)
from tools import monitoring

pytestmark = pytest.mark.manifests

COMPONENT = MANIFESTS / "components" / "monitoring"
RULES_TEST = COMPONENT / "rules_test.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
SERVICES = ("auth", "gateway", "converter", "notification")
# the Pushgateway (pushgateway.yaml) serves what the backup CronJob pushed on its one port
METRICS_PORTS = {**dict.fromkeys(SERVICES, 9100), "rabbitmq": 15692, "pushgateway": 9091}
SEVERITIES = {"warning", "critical"}
# alerts whose very point is a series that is missing: they fire on an empty Prometheus
FIRE_WHEN_NOTHING_SCRAPED = {"BackupMissing"}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if not exe:
        pytest.fail("promtool is needed (Debian package `prometheus`; scripts/bootstrap.sh)")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory) -> Path:
    """rules.yaml (the PrometheusRule's spec) beside a copy of rules_test.yaml."""
    folder = tmp_path_factory.mktemp("rules")
    (folder / "rules.yaml").write_text(monitoring.rules_file())
    shutil.copy(RULES_TEST, folder / RULES_TEST.name)
    return folder


@pytest.fixture(scope="module")
def with_policies(tmp_path_factory) -> list[dict]:
    """base + infra + monitoring + network-policies, rendered."""
    folder = tmp_path_factory.mktemp("render")
    return kustomize(combination_dir(folder, ("monitoring", "network-policies")))


def test_rules_pass_promtool_check(rules_dir):
    out = promtool("check", "rules", "rules.yaml", cwd=rules_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(list(monitoring.rules()))} rules found" in out.stdout


def test_every_alert_passes_its_unit_tests(rules_dir):
    out = promtool("test", "rules", RULES_TEST.name, cwd=rules_dir)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_quiet_including_without_traffic():
    # every scalar a string, as promtool reads them (0x60 is "0 sixty times", not hex)
    suite = yaml.load(RULES_TEST.read_text(), Loader=yaml.BaseLoader)
    assert suite["rule_files"] == ["rules.yaml"]
    fires, quiet = set(), set()
    for case in suite["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
            for alert in check["exp_alerts"]:
                assert {"summary", "description", "runbook_url"} <= set(alert["exp_annotations"])
                assert alert["exp_labels"]["severity"] in SEVERITIES
    names = {rule["alert"] for rule in monitoring.alerts()}
    assert fires == names, f"alerts never seen firing: {names - fires}"
    assert quiet == names, f"alerts never seen quiet: {names - quiet}"
    # an idle system (every series there, no counter moving): nothing fires; an empty
    # Prometheus: nothing but the alerts about a missing series
    whole = [case for case in suite["tests"]
             if {c["alertname"] for c in case["alert_rule_test"]} == names]

    def firing(case: dict) -> set[str]:
        return {c["alertname"] for c in case["alert_rule_test"] if c["exp_alerts"]}

    assert any(case["input_series"] == [] and firing(case) == FIRE_WHEN_NOTHING_SCRAPED
               for case in whole), "nothing scraped"
    assert any(case["input_series"] and not firing(case) and all(
        re.fullmatch(r"\d+x\d+", s["values"]) for s in case["input_series"]
        if s["series"].split("{")[0].endswith("_total")) for case in whole), "no traffic"


def test_every_alert_explains_itself_and_links_its_runbook_section():
    anchors = monitoring.markdown_anchors(OPERATIONS.read_text())
    alerts = monitoring.alerts()
    assert len(alerts) == 9
    for rule in alerts:
        name, notes = rule["alert"], rule.get("annotations", {})
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert notes.get("summary") and "{{" in notes.get("description", ""), name
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{name}: {notes['runbook_url']}"
        assert anchor == name.lower(), f"{name}: its section is headed by its name"
        assert rule.get("for"), f"{name}: a single bad scrape must not page"


def test_component_renders_monitors_rules_and_dashboard(with_policies):
    objects = with_policies
    [rule] = find(objects, "PrometheusRule")
    assert rule["spec"] == monitoring.rule_spec()  # what Prometheus loads is what was tested
    [dashboard_map] = [o for o in find(objects, "ConfigMap")
                       if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert dashboard_map["metadata"]["name"] == "mp3converter-dashboard"  # no hash suffix
    dashboard = json.loads(dashboard_map["data"]["dashboard.json"])
    assert dashboard == json.loads(monitoring.DASHBOARD.read_text())
    used = set().union(*map(monitoring.metric_names,
                            monitoring.dashboard_expressions(dashboard)))
    assert {"mp3converter_uploads_total", "rabbitmq_queue_messages_ready",
            "mp3converter_conversion_duration_seconds_bucket",
            "mp3converter_converted_media_seconds_total", "mp3converter_conversions_total",
            "mp3converter_emails_total", "mp3converter_http_requests_total",
            "mp3converter_webhook_attempts_total",
            "mp3converter_backup_last_verified_timestamp_seconds",
            "mp3converter_backup_success"} <= used

    monitors = find(objects, "PodMonitor")
    scraped = {}
    for owner, spec in pod_templates(objects):
        labels = pod_labels(owner)
        for monitor in monitors:
            if selects(monitor["spec"]["selector"], labels):
                [endpoint] = monitor["spec"]["podMetricsEndpoints"]
                ports = {p["name"]: p["containerPort"] for c in spec["containers"]
                         for p in c.get("ports", []) if "name" in p}
                assert endpoint["port"] in ports, f"{labels['app']} has no port {endpoint['port']}"
                scraped[labels["app"]] = ports[endpoint["port"]]
                annotations = owner["spec"]["template"]["metadata"]["annotations"]
                assert annotations["prometheus.io/scrape"] == "true"
                assert annotations["prometheus.io/port"] == str(ports[endpoint["port"]])
                assert annotations["prometheus.io/path"] == endpoint["path"] == "/metrics"
    assert scraped == METRICS_PORTS


def test_only_the_monitoring_namespace_reaches_the_metrics_ports(with_policies):
    objects = with_policies
    for owner, _ in pod_templates(objects):
        labels = pod_labels(owner)
        admitted = set()
        for policy in find(objects, "NetworkPolicy"):
            if not selects(policy["spec"]["podSelector"], labels):
                continue
            for rule in policy["spec"].get("ingress", []):
                for peer in rule["from"]:
                    ns = peer.get("namespaceSelector", {}).get("matchLabels", {})
                    if ns.get("kubernetes.io/metadata.name") == "monitoring":
                        admitted |= {p["port"] for p in rule["ports"]}
        wanted = {METRICS_PORTS[labels["app"]]} if labels["app"] in METRICS_PORTS else set()
        assert admitted == wanted, f"{labels['app']}: monitoring reaches {admitted}"


def test_rabbitmq_serves_per_queue_metrics_on_its_metrics_port():
    objects = kustomize(MANIFESTS / "infra")
    [config] = find(objects, "ConfigMap", "rabbitmq-config")
    assert "rabbitmq_prometheus" in config["data"]["enabled_plugins"]
    assert config["data"]["enabled_plugins"].strip().endswith("].")  # an Erlang term
    settings = [line.split("=") for line in config["data"]["20-mp3converter.conf"].splitlines()
                if "=" in line and not line.lstrip().startswith("#")]
    assert [k.strip() for k, v in settings if v.strip() == "true"] == [
        "prometheus.return_per_object_metrics"]
    [statefulset] = find(objects, "StatefulSet", "rabbitmq")
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 15692} in container["ports"]
    mounts = {m["mountPath"]: m.get("subPath") for m in container["volumeMounts"]}
    assert mounts["/etc/rabbitmq/enabled_plugins"] == "enabled_plugins"
    assert mounts["/etc/rabbitmq/conf.d/20-mp3converter.conf"] == "20-mp3converter.conf"


def test_every_workload_and_pod_carries_app_and_part_of(tmp_path):
    objects = kustomize(combination_dir(tmp_path, COMPONENTS))
    for owner, _ in pod_templates(objects):
        name = f"{owner['kind']}/{owner['metadata']['name']}"
        for labels in (owner["metadata"]["labels"], pod_labels(owner)):
            assert labels.get("app"), name
            assert labels.get("app.kubernetes.io/part-of") == "mp3converter", name
        selector = owner["spec"].get("selector", {}).get("matchLabels", {})
        assert "app.kubernetes.io/part-of" not in selector, f"{name}: selectors are immutable"
        for claim in owner["spec"].get("volumeClaimTemplates", []):
            assert "labels" not in claim["metadata"], f"{name}: volumeClaimTemplates are immutable"


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (vhost, queue) (rabbitmq_queue_messages_ready{queue=~".+\\\\.dlq"}) > 0',
     {"rabbitmq_queue_messages_ready"}),
    ("histogram_quantile(0.95, sum by (le) (rate(a_seconds_bucket[$__rate_interval])))",
     {"a_seconds_bucket"}),
    ("sum(rate(a_total[5m])) / sum(rate(b_sum[5m] offset 1h)) and on (pod) c > bool 1e3",
     {"a_total", "b_sum", "c"}),
    ('time() - max without (instance) (beat{job="x", name="not_a_metric"}) > $threshold',
     {"beat"}),
    ("sum(x) by (queue) or vector(0)", {"x"}),
    ('label_replace(up{job="a"}, "dst", "$1", "src", "(.*)")', {"up"}),
    ("max_over_time(deriv(g[10m])[1h:5m]) * ignoring(a) group_left(b) h", {"g", "h"}),
    ('topk(5, count_values("v", k:recorded:rate5m))', {"k:recorded:rate5m"}),
])
def test_metric_names_are_read_from_promql(expr, names):
    assert monitoring.metric_names(expr) == names


def test_dashboard_and_rule_expressions_are_all_found():
    dashboard = json.loads(monitoring.DASHBOARD.read_text())
    targets = [t for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(monitoring.dashboard_expressions(dashboard)) == len(targets) > 10
    nested = {"panels": [{"type": "row", "panels": [{"targets": [{"expr": "a"}]}]}],
              "templating": {"list": [{"type": "query", "query": "label_values(b, pod)"},
                                      {"type": "query", "query": {"query": "c > 0"}}]}}
    assert monitoring.dashboard_expressions(nested) == ["a", "b", "c > 0"]
    used = monitoring.used_metric_names()
    assert "mp3converter_consumer_last_heartbeat_timestamp_seconds" in used  # rules only
    assert "mp3converter_uploads_total" in used  # dashboard only


def test_defined_metric_names_follow_prometheus_client_naming(tmp_path):
    (tmp_path / "m.py").write_text(
        "from prometheus_client import Counter, Gauge, Histogram\n"
        "import prometheus_client as pc\n"
        "A = Counter('mp3converter_uploads_total', 'Uploads', ['service'])\n"
        "B = Counter('logins', 'Logins', namespace='mp3converter')\n"
        "C = pc.Histogram(name='smtp_duration_seconds', documentation='SMTP time')\n"
        "D = Family(Gauge, 'jobs_in_progress', 'Jobs', multiprocess_mode='livesum')\n"
        "E = Gauge(f'{PREFIX}_x', 'Built')\n"
        "for name in ('jobs_queued',):\n"
        "    pc.GaugeMetricFamily(PREFIX + name, 'Queued jobs')\n")
    (tmp_path / "other.py").write_text("NOT_A_METRIC = 'plain_word'\n")
    assert monitoring.defined_metric_names(tmp_path) == {
        "mp3converter_uploads_total", "mp3converter_logins_total",
        "mp3converter_smtp_duration_seconds", "mp3converter_smtp_duration_seconds_bucket",
        "mp3converter_smtp_duration_seconds_sum", "mp3converter_smtp_duration_seconds_count",
        "mp3converter_jobs_in_progress", "mp3converter_jobs_queued"}


def test_every_metric_the_dashboard_and_rules_read_is_defined():
    defined = monitoring.defined_metric_names() | monitoring.RABBITMQ_METRICS
    missing = monitoring.used_metric_names() - defined
    assert not missing, f"read by the dashboard or rules, defined nowhere in src/: {missing}"


def test_rules_command_prints_the_plain_rules_file():
    out = subprocess.run([sys.executable, "-m", "tools.monitoring", "rules"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout) == monitoring.rule_spec()


def test_backup_pushes_to_the_pushgateway_that_prometheus_scrapes_honoring_its_labels(
        tmp_path, rendered):
    """A backup Job lives minutes a night: it pushes its outcome (PUSHGATEWAY_URL, set by this
    component when components/backup comes first), the Pushgateway keeps it, and Prometheus
    scrapes it with honorLabels so the series keep the job the backup pushed."""
    objects = kustomize(combination_dir(tmp_path, ("backup", "monitoring")))
    [config] = find(objects, "ConfigMap", "backup-config")
    url = config["data"]["PUSHGATEWAY_URL"]
    host, port = url.removeprefix("http://").split(":")
    [service] = find(objects, "Service", host)
    assert [p["port"] for p in service["spec"]["ports"]] == [int(port)]
    [(owner, spec)] = [(o, s) for o, s in pod_templates(objects)
                       if selects({"matchLabels": service["spec"]["selector"]}, pod_labels(o))]
    [container] = spec["containers"]
    assert container["image"].startswith("docker.io/prom/pushgateway:v")
    assert {"name": "http", "containerPort": int(port)} in container["ports"]
    assert not any("admin-api" in arg for arg in container.get("args", []))
    [monitor] = [m for m in find(objects, "PodMonitor")
                 if selects(m["spec"]["selector"], pod_labels(owner))]
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["honorLabels"] is True
    # without the monitoring component nothing is pushed (and nothing may be reached)
    [plain] = find(rendered["minikube"], "ConfigMap", "backup-config")
    assert "PUSHGATEWAY_URL" not in plain["data"]


def test_backup_alerts_read_what_the_backup_pushes():
    rules = {rule["alert"]: rule for rule in monitoring.alerts()}
    missing, failed = rules["BackupMissing"]["expr"], rules["BackupFailed"]["expr"]
    assert "26 * 3600" in missing
    assert "absent(mp3converter_backup_last_verified_timestamp_seconds)" in missing
    assert monitoring.metric_names(failed) == {"mp3converter_backup_success"}
    source = (ROOT / "src" / "ops" / "backup_status.py").read_text()
    assert 'PUSH_JOB = "mp3converter-backup"' in source
