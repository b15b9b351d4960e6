"""The monitoring component read as data: its alert rules, the PromQL of its dashboard and rules,
the metric names that PromQL uses, and the names the services define.

``python -m tools.monitoring rules`` prints the rules as a plain Prometheus rules file;
``python -m tools.monitoring names`` prints every metric name the dashboard and rules use (the
names a running Prometheus must know: compare with /api/v1/label/__name__/values).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPONENT = ROOT / "manifests" / "components" / "monitoring"
RULES = COMPONENT / "prometheusrule.yaml"
DASHBOARD = COMPONENT / "dashboard.json"
SOURCES = ROOT / "src"
# RabbitMQ's rabbitmq_prometheus plugin (per-object metrics): the names the rules and dashboard
# may use besides the services' own
RABBITMQ_METRICS = frozenset({
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_queue_consumers",
})

# words of PromQL that look like names but name no series
_KEYWORDS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
# label lists of grouping and vector matching: `by (le, queue)`, `on (pod) group_left (node)`
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_NAME = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (Grafana's `$variables` allowed), e.g.
    ``sum by (le) (rate(x_bucket{a="b"}[5m]))`` -> ``{"x_bucket"}``. Names given only as
    ``{__name__="..."}`` are not found."""
    text = _VARIABLE.sub("1m", expr)
    text = _STRING.sub('""', text)
    while True:  # label matchers, then ranges and subqueries, innermost first
        stripped = _BRACKETS.sub("", _BRACES.sub("", text))
        if stripped == text:
            break
        text = stripped
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue  # a function or an operator
        if re.fullmatch(r"\d+[smhdwy]|e\d+", name):
            continue
        names.add(name)
    return names


def rule_spec(path: Path = RULES) -> dict:
    """The spec of the PrometheusRule: ``{"groups": [...]}``, a plain Prometheus rules file."""
    [doc] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert doc["kind"] == "PrometheusRule", path
    return doc["spec"]


def rules(spec: dict | None = None) -> Iterator[dict]:
    """Every rule (alerting or recording) of every group."""
    for group in (spec or rule_spec())["groups"]:
        yield from group["rules"]


def alerts(spec: dict | None = None) -> list[dict]:
    """The alerting rules."""
    return [rule for rule in rules(spec) if "alert" in rule]


def dashboard_expressions(dashboard: dict | None = None) -> list[str]:
    """The PromQL of every panel target and query variable of a Grafana dashboard."""
    if dashboard is None:
        dashboard = json.loads(DASHBOARD.read_text())
    found = []

    def walk(panels: Iterable[dict]) -> None:
        for panel in panels:
            found.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))  # collapsed rows hold their panels

    walk(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query") if variable.get("type") == "query" else None
        if isinstance(query, dict):
            query = query.get("query")
        if query:  # label_values(metric, label) or a PromQL expression
            inner = re.fullmatch(r"\s*label_values\((.*?)(?:,\s*\w+)?\)\s*", query)
            found.append(inner.group(1) if inner else query)
    return found


def used_metric_names(spec: dict | None = None, dashboard: dict | None = None) -> set[str]:
    """Every metric name the rules and the dashboard read."""
    exprs = [rule["expr"] for rule in rules(spec)] + dashboard_expressions(dashboard)
    return set().union(*(metric_names(expr) for expr in exprs))


_KINDS = {"Counter": "counter", "CounterMetricFamily": "counter",
          "Histogram": "histogram", "HistogramMetricFamily": "histogram",
          "Summary": "summary", "SummaryMetricFamily": "summary",
          "Gauge": "gauge", "GaugeMetricFamily": "gauge", "Info": "info"}
_METRIC_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _exposed(kind: str, name: str) -> set[str]:
    """The series names prometheus_client exposes for a metric of ``kind`` created as ``name``."""
    if kind == "counter":
        return {name.removesuffix("_total") + "_total"}
    if kind in ("histogram", "summary"):
        return {name, *(name + suffix for suffix in _HISTOGRAM_SUFFIXES)}
    if kind == "info":
        return {name.removesuffix("_info") + "_info"}
    return {name}


def _kind_of(call: ast.Call) -> str | None:
    """The metric kind a call creates: ``Counter(...)``, ``pc.Gauge(...)``, or a wrapper given
    the class, ``Family(Counter, "name", ...)``."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name in _KINDS:
        return _KINDS[name]
    for arg in call.args:
        if isinstance(arg, ast.Name) and arg.id in _KINDS:
            return _KINDS[arg.id]
    return None


def defined_metric_names(sources: Path = SOURCES, prefix: str = "mp3converter_") -> set[str]:
    """The series names the code under ``sources`` defines, read from the source (not run).

    In every module that uses prometheus_client: the name of each metric created with a literal
    name (``Counter("x_total")``, ``Family(Histogram, "x_seconds")``, ``namespace=`` honoured),
    exposed as prometheus_client does (``_total``; ``_bucket``, ``_sum``, ``_count``); and, as
    gauges, the other string literals shaped like metric names (``"jobs_queued"``: names built
    at scrape time). Names without ``prefix`` get it, as the services' own helper gives it.
    """
    names: set[str] = set()

    def full(name: str) -> str:
        return name if name.startswith(prefix) else prefix + name

    for path in sorted(sources.rglob("*.py")):
        text = path.read_text()
        if "prometheus_client" not in text:
            continue
        tree = ast.parse(text, filename=str(path))
        named: set[int] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not (kind := _kind_of(node)):
                continue
            keywords = {kw.arg: kw.value for kw in node.keywords}
            positional = [a for a in node.args
                          if not (isinstance(a, ast.Name) and a.id in _KINDS)]
            first = keywords.get("name") or (positional[0] if positional else None)
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)
                    and _METRIC_NAME.fullmatch(first.value)):
                continue
            name = first.value
            namespace = keywords.get("namespace")
            if isinstance(namespace, ast.Constant) and namespace.value:
                name = f"{namespace.value}_{name}"
            names |= _exposed(kind, full(name))
            named.add(id(first))
        # options (namespace=, multiprocess_mode=) and pieces of f-strings name no metric
        skipped = named | {id(kw.value) for node in ast.walk(tree) if isinstance(node, ast.Call)
                           for kw in node.keywords}
        skipped |= {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                    for part in node.values}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in skipped and "_" in node.value.strip("_")
                    and _METRIC_NAME.fullmatch(node.value)):
                names.add(full(node.value))
    return names


def markdown_anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown document."""
    anchors = set()
    for line in text.splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL) as literal blocks, as they are written in the manifest."""


_BlockDumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def rules_file(spec: dict | None = None) -> str:
    """The rules as a plain Prometheus rules file (``rule_files``, ``promtool check rules``)."""
    return yaml.dump(spec or rule_spec(), Dumper=_BlockDumper, sort_keys=False, width=100)


def main(argv: list[str]) -> int:
    if argv == ["rules"]:
        sys.stdout.write(rules_file())
        return 0
    if argv == ["names"]:
        sys.stdout.write("".join(f"{name}\n" for name in sorted(used_metric_names())))
        return 0
    sys.stderr.write("usage: python -m tools.monitoring rules|names\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
