"""``python -m common.jobs_probe``: answers the gateway master's questions about queued jobs.

The gunicorn master serves the metrics but must never import pymongo: the gevent workers it
forks would inherit modules imported before gevent patched the standard library. So at scrape
time it asks this process, over its stdin and stdout, one JSON line each way:
``{"n": 1, "timeout": 2.0}`` -> ``{"n": 1, "count": 0, "oldest": null}`` (or ``"error"``).
It stops when the master closes its stdin (or exits).
"""

import json
import sys

from common.jobs import Jobs
from common.settings import MongoSettings, load_or_exit
from common.store import Store


def main() -> int:
    """Answer each question line until stdin closes."""
    jobs = Jobs(Store(load_or_exit(MongoSettings.from_env, "gateway"), timeout_ms=2000))
    for line in sys.stdin:
        question = {}
        try:
            question = json.loads(line)
            count, oldest = jobs.queued_summary(float(question.get("timeout", 2.0)))
            answer = {"n": question.get("n"), "count": count, "oldest": oldest}
        except Exception as exc:  # noqa: BLE001 - the master leaves the gauges out
            answer = {"n": question.get("n") if isinstance(question, dict) else None,
                      "error": str(exc)[:300] or type(exc).__name__}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
