"""Machine facts and the results table, for the terminal and for docs/performance.md."""

from __future__ import annotations

import math
import os
import re
import statistics
import subprocess
import time
from pathlib import Path

_TARGET = re.compile(r"^(<=|>=|<|>)\s*(-?[\d.]+)")


def machine() -> dict[str, str]:
    """nproc, memory, CPU model, load and date of this run."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.splitlines()
    mem = next((line.split() for line in free if line.startswith("Mem:")), ["", "?"])
    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "nproc": str(os.cpu_count()),
            "memory (free -g)": f"{mem[1]} GiB total, {mem[-1]} GiB available", "cpu": cpu,
            "load average": " ".join(Path("/proc/loadavg").read_text().split()[:3])}


def row(case: str, what: str, value: float, target: str | None, ok: bool | None,
        detail: str = "", unit: str | None = None) -> dict:
    """One line of the results table; ``unit`` when the value is no ratio (e.g. " s")."""
    return {"case": case, "what": what, "value": value, "target": target, "ok": ok,
            "detail": detail, "unit": unit}


def _value(r: dict) -> str:
    if isinstance(r["value"], float) and math.isnan(r["value"]):
        return "failed"
    unit = r.get("unit") or (" ms" if r["case"] == "P" else " MiB" if "RSS" in r["what"]
                             else " cores" if "cores" in r["what"] else "x")
    return f"{r['value']:.2f}{unit}"


def _verdict(r: dict) -> str:
    return {True: "met", False: "**missed**", None: "(reported)"}[r["ok"]]


def markdown(rows: list[dict], facts: dict[str, str], command: str) -> str:
    """The results as a markdown table with the machine and the command."""
    lines = [f"Command: `{command}`", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    lines += ["", "| # | measurement | result | target | verdict | details |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['what']} | {_value(r)} | {r['target'] or ''} | "
                     f"{_verdict(r)} | {r['detail']} |")
    return "\n".join(lines) + "\n"


def terminal(rows: list[dict]) -> str:
    """The results as plain aligned text."""
    width = max((len(r["what"]) for r in rows), default=10)
    out = []
    for r in rows:
        out.append(f"{r['case']}  {r['what']:<{width}}  {_value(r):>10}  "
                   f"{r['target'] or '':>10}  {_verdict(r).strip('*')}")
        out.append(f"   {r['detail']}")
    return "\n".join(out)


def _holds(target: str | None, value: float) -> bool | None:
    """Whether ``value`` meets a target written as "<= 1.5x", ">= 1.8x", "< 0.2 s"; None when
    there is none (or it is not a bound)."""
    match = _TARGET.match(target or "")
    if match is None:
        return None
    bound = float(match[2])
    return {"<=": value <= bound, ">=": value >= bound, "<": value < bound,
            ">": value > bound}[match[1]]


def combine(runs: list[list[dict]]) -> list[dict]:
    """The rows of several whole runs as one table: each measurement's median over the runs
    that produced it (a failed run's NaN counts as a miss), judged against its target, with
    every run's value in the details."""
    combined: dict[tuple[str, str], list[dict]] = {}
    for rows in runs:
        for r in rows:
            combined.setdefault((r["case"], r["what"]), []).append(r)
    out = []
    for found in combined.values():
        values = [r["value"] for r in found]
        numbers = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
        value = statistics.median(numbers) if len(numbers) == len(values) else float("nan")
        first = found[0]
        ok = (first["ok"] if first["ok"] is None else False if math.isnan(value) else
              _holds(first["target"], value))
        listed = ", ".join("failed" if math.isnan(v) else f"{v:.2f}" for v in values)
        out.append({**first, "value": value, "ok": ok,
                    "detail": f"median of {len(values)} runs ({listed}); first run: "
                              f"{first['detail']}"})
    return out
