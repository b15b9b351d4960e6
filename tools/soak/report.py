"""The soak's report: counts, latencies, the longest wait a fault caused, as JSON and text."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

from tools.soak.check import Verdict
from tools.soak.faults import Fault
from tools.soak.load import Upload


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))], 2)


def _overlapping(upload: Upload, latency: float, faults: list[Fault]) -> list[Fault]:
    """The faults whose [start, end] met the time the job was waited for."""
    begin, end = upload.answered_at, upload.answered_at + latency
    return [f for f in faults if f.start <= end and (f.end or f.start) >= begin]


def worst_wait(latencies: list[tuple[Upload, float]], faults: list[Fault]) -> dict | None:
    """The longest time a user waited because of a fault: over the jobs whose wait (accepted
    to email) overlapped a fault, the most by which it exceeded the median wait of the same
    kind of job (same clip kind, normalized or not) overlapping no fault."""
    calm: dict[str, list[float]] = defaultdict(list)
    for upload, latency in latencies:
        if not _overlapping(upload, latency, faults):
            calm[upload.label].append(latency)
    everything = [latency for _, latency in latencies]
    worst = None
    for upload, latency in latencies:
        met = _overlapping(upload, latency, faults)
        if not met:
            continue
        baseline = statistics.median(calm.get(upload.label) or everything)
        extra = latency - baseline
        if worst is None or extra > worst["seconds"]:
            worst = {"seconds": round(max(0.0, extra), 2), "job_id": upload.job_id,
                     "label": upload.label, "latency": round(latency, 2),
                     "baseline": round(baseline, 2),
                     "faults": [f"{f.kind} on {f.target}" for f in met]}
    return worst


def build(*, seed: int, seconds: float, uploads: list[Upload], verdict: Verdict,
          faults: list[Fault], skipped: list, timings: dict, restarts: dict,
          queues, sweeps: list[dict], final_sweep: dict, users: int, began: float) -> dict:
    """The report as one JSON-able dict."""
    latencies = [latency for _, latency in verdict.latencies]
    refusals = Counter(u.refusal() for u in uploads if u.refusal())
    by_kind = Counter(f.kind for f in faults)
    return {
        "seed": seed,
        "seconds": seconds,
        "users": users,
        "uploads": {
            "sent": len(uploads),
            "accepted": sum(u.accepted for u in uploads),
            "refused": dict(refusals),
            "unanswered": sum(u.status is None for u in uploads),
            "unanswered_kept_as_job": verdict.unanswered_kept,
            "deleted_by_users": sum(1 for u in uploads if u.delete
                                    and u.delete.get("status") == 204),
        },
        "outcomes": dict(verdict.outcomes),
        "faults": {
            "count": len(faults),
            "by_kind": dict(by_kind),
            "skipped": [asdict(p) for p in skipped],
            "events": [{**asdict(f), "start": round(f.start - began, 1),
                        "end": round((f.end or f.start) - began, 1)} for f in faults],
        },
        "lost": verdict.count("lost"),
        "duplicated": verdict.count("duplicated"),
        "unexplained": verdict.count("unexplained"),
        "findings": [asdict(f) for f in verdict.findings],
        "explained_dead_letters": verdict.explained_dead_letters,
        "accepted_to_email_seconds": {
            "count": len(latencies), "p50": percentile(latencies, 0.5),
            "p95": percentile(latencies, 0.95),
            "max": round(max(latencies), 2) if latencies else None,
        },
        "worst_fault_wait": worst_wait(verdict.latencies, faults),
        "restarts": restarts,
        "queues_at_end": queues,
        "sweeps": {"runs": len(sweeps), "did": _totals(sweeps),
                   "errors": [s["error"] for s in sweeps if "error" in s], "final": final_sweep},
        "timings": timings,
    }


def _totals(sweeps: list[dict]) -> dict:
    """What the periodic sweeps did, added up (the steps that did something)."""
    totals: Counter = Counter()
    for result in sweeps:
        totals.update({k: v for k, v in result.items() if isinstance(v, int) and v})
    return dict(totals)


def passed(report: dict) -> bool:
    """Nothing lost, duplicated or unexplained."""
    return not (report["lost"] or report["duplicated"] or report["unexplained"])


def write(report: dict, path: Path) -> None:
    """The report as JSON."""
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def text(report: dict) -> str:
    """The report for a person."""
    up, lat, worst = report["uploads"], report["accepted_to_email_seconds"], \
        report["worst_fault_wait"]
    lines = [
        f"soak seed {report['seed']}, {report['seconds']} s, {report['users']} users",
        f"uploads: {up['sent']} sent, {up['accepted']} accepted, refused {up['refused'] or 0}, "
        f"{up['unanswered']} unanswered ({up['unanswered_kept_as_job']} kept as a job), "
        f"{up['deleted_by_users']} deleted by their users",
        f"outcomes: {report['outcomes']}",
        f"faults: {report['faults']['count']} {report['faults']['by_kind']}"
        + (f", {len(report['faults']['skipped'])} skipped" if report["faults"]["skipped"] else ""),
        f"lost {report['lost']}, duplicated {report['duplicated']}, "
        f"unexplained {report['unexplained']}",
        f"accepted -> email: p50 {lat['p50']} s, p95 {lat['p95']} s, max {lat['max']} s "
        f"({lat['count']} jobs)",
        "worst wait caused by a fault: "
        + (f"{worst['seconds']} s ({worst['label']} job {worst['job_id']}: {worst['latency']} s "
           f"against {worst['baseline']} s, during {', '.join(worst['faults'])})"
           if worst else "none"),
        f"restarts: { {k: v for k, v in report['restarts'].items() if v} }",
    ]
    for finding in report["findings"][:50]:
        lines.append(f"  {finding['category'].upper()}: {finding['what']} "
                     f"(job {finding['job_id']}, {finding['filename']})")
    return "\n".join(lines)
