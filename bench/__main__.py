"""``python -m bench [--quick] [--only 1,3] [--reps N] [--runs N]``: run the benchmarks, print
ratios."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import report
from bench.cases import CASES, row
from bench.context import Bench, Options
from bench.phases import converter_phases
from bench.stack import BenchStack
from tools.processes import ROOT

OUT = ROOT / "bench" / "out"


def parse(argv: list[str]) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions, no 600 s clip")
    parser.add_argument("--reps", type=int, help="repetitions of short measurements")
    parser.add_argument("--profile", action="store_true",
                        help="also sample a converter with py-spy: time per job phase")
    parser.add_argument("--only", default="", help="comma-separated measurement numbers (1-9)")
    parser.add_argument("--runs", type=int, default=1,
                        help="whole runs of the selection; the table shows each result's "
                             "median over the runs")
    parser.add_argument("--cache-dir", type=Path, default=OUT / "media",
                        help="where generated inputs are kept between runs")
    args = parser.parse_args(argv)
    reps = args.reps or (3 if args.quick else 5)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = only - set(CASES)
    if unknown:
        parser.error(f"unknown measurement(s): {', '.join(sorted(unknown))}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return Options(reps=reps, long_reps=2 if args.quick else 3, quick=args.quick,
                   cache_dir=args.cache_dir.resolve(), work_dir=Path(), only=only,
                   profile=args.profile, runs=args.runs)


def _title(case) -> str:
    """A measurement's docstring without its number."""
    return case.__doc__.split(". ", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    """Run the selected measurements and write bench/out/results.{md,json}."""
    argv = sys.argv[1:] if argv is None else argv
    options = parse(argv)
    command = " ".join(["make bench", *([f"BENCH_ARGS={shlex.quote(' '.join(argv))}"]
                                        if argv else [])])
    OUT.mkdir(parents=True, exist_ok=True)
    facts = report.machine()
    runs = []
    for run in range(1, options.runs + 1):
        if options.runs > 1:
            print(f"==== run {run} of {options.runs}", flush=True)
        runs.append(_run(options))
    rows = runs[0] if options.runs == 1 else report.combine(runs)
    facts["load average after"] = report.machine()["load average"]
    print("\n" + report.terminal(rows))
    (OUT / "results.md").write_text(report.markdown(rows, facts, command))
    (OUT / "results.json").write_text(json.dumps({"machine": facts, "rows": rows,
                                                  "runs": runs}, indent=1))
    print(f"\nwritten: {OUT / 'results.md'}")
    return 0 if all(r["ok"] is not False for r in rows) else 1


def _run(options: Options) -> list[dict]:
    """One whole run of the selected measurements, on a stack of its own: their rows."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-", dir=OUT) as tmp:
        options.work_dir = Path(tmp) / "work"
        options.work_dir.mkdir()
        with BenchStack(Path(tmp) / "var") as stack:
            bench = Bench(options, stack)
            cases = dict(CASES, P=converter_phases) if options.profile else CASES
            try:
                for number, case in cases.items():
                    if options.only and number not in options.only | {"P"}:
                        continue
                    print(f"== {number}. {_title(case)}", flush=True)
                    started = time.monotonic()
                    try:
                        rows += case(bench)
                    except Exception as exc:  # noqa: BLE001 - report it and go on
                        traceback.print_exc()
                        rows.append(row(number, _title(case).rstrip("."),
                                        float("nan"), None, False,
                                        f"{type(exc).__name__}: {exc}"[:400]))
                    print(f"   ({time.monotonic() - started:.0f}s)", flush=True)
            finally:
                bench.close()
    return rows


if __name__ == "__main__":
    sys.exit(main())
