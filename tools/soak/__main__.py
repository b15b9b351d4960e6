"""``python -m tools.soak --seconds N --seed S``: one soak run; exit 1 when anything was lost,
duplicated or unexplained."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from tools.soak.report import passed
from tools.soak.runner import Settings, run


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=600, help="how long the load runs")
    parser.add_argument("--seed", type=int, default=1, help="draws the load and the faults")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None,
                        help="run directory (default var/soak/<time>-seed<seed>)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the servers' data after a run that passed")
    args = parser.parse_args(argv)
    if args.seconds < 30 or args.users < 1:
        parser.error("--seconds must be at least 30 and --users at least 1")
    signal.signal(signal.SIGTERM, _interrupt)  # stopped like Ctrl-C: everything cleaned up
    result = run(Settings(seconds=args.seconds, seed=args.seed, users=args.users,
                          directory=args.dir.resolve() if args.dir else None,
                          keep=args.keep))
    print(f"report: {Path(result['directory']) / 'report.json'}", flush=True)
    return 0 if passed(result) else 1


if __name__ == "__main__":
    sys.exit(main())
