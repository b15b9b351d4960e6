"""A file whose age tells a liveness probe whether a consumer loop still turns.

``python -m common.heartbeat check [SERVICE]`` exits 1 when the file is stale or missing.
"""

import os
import sys
import time

from common.settings import ConsumerSettings


def touch(path: str) -> None:
    """Mark the loop as alive now."""
    with open(path, "a"):
        pass
    os.utime(path, None)


def age(path: str) -> float:
    """Seconds since the last touch (infinite when the file is missing)."""
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return float("inf")


def main(argv: list[str]) -> int:
    """Command line entry point of the liveness probe."""
    if len(argv) < 1 or argv[0] != "check":
        print("usage: python -m common.heartbeat check [SERVICE]", file=sys.stderr)
        return 2
    service = argv[1] if len(argv) > 1 else "consumer"
    settings = ConsumerSettings.from_env(service, default_grace=0)
    seconds = age(settings.heartbeat_file)
    if seconds > settings.heartbeat_max_age:
        print(f"stale heartbeat: {settings.heartbeat_file} is {seconds:.0f}s old", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
