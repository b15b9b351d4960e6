"""Machine facts and the results table, for the terminal and for docs/performance.md."""

from __future__ import annotations

import math
import os
import subprocess
import time
from pathlib import Path


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
