"""What the last backup or verification did: ``SET/status.json``, the final JSON line, and the
gauges pushed to a Prometheus Pushgateway (PUSHGATEWAY_URL) for the alerts."""

import json
import logging
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from ops import manifest as manifests

log = logging.getLogger(__name__)

PUSH_JOB = "mp3converter-backup"


def record(settings, set_dir: Path | None, line: dict) -> dict:
    """Write ``line`` as the set's status.json (when there is a set), push the gauges (when
    PUSHGATEWAY_URL is set) and return it, for the caller to print last."""
    if set_dir is not None and set_dir.is_dir():
        manifests.write(set_dir, line, manifests.STATUS)
    if settings.pushgateway_url:
        root = set_dir.parent if set_dir is not None else (
            Path(settings.backup_dir) if settings.backup_dir else None)
        try:
            push(settings.pushgateway_url, line, *(_last_times(root) if root else (0.0, 0.0)))
        except Exception as exc:  # noqa: BLE001 - a Pushgateway away must not undo the backup
            log.warning("could not push the backup metrics", extra={"error": str(exc)})
    return line


def _last_times(root: Path) -> tuple[float, float]:
    """When a backup last succeeded and a set was last verified, from the sets in ``root``
    (0 when never): the Pushgateway replaces every gauge at each push."""
    success = verified = 0.0
    for status_path in root.glob(f"*/{manifests.STATUS}"):
        try:
            status = json.loads(status_path.read_text())
            backup = json.loads((status_path.parent / manifests.MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if status.get("ok"):
            success = max(success, manifests.timestamp(backup.get("finished_at")) or 0.0)
        verified = max(verified, manifests.timestamp(backup.get("verified_at")) or 0.0)
    return success, verified


def push(url: str, line: dict, last_success: float, last_verified: float) -> None:
    """Push the run's gauges (job ``mp3converter-backup``)."""
    registry = CollectorRegistry()
    finished = manifests.timestamp(line["finished_at"])

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(name, doc, registry=registry).set(value)

    gauge("mp3converter_backup_last_run_timestamp_seconds",
          "When the last backup or verification finished", finished)
    gauge("mp3converter_backup_last_success_timestamp_seconds",
          "When the last backup that succeeded finished (0: never)",
          max(last_success, finished if line["ok"] else 0.0))
    gauge("mp3converter_backup_last_verified_timestamp_seconds",
          "When a backup set was last verified by a trial restore (0: never)",
          max(last_verified, finished if line["verified"] else 0.0))
    gauge("mp3converter_backup_success", "1 if the last run succeeded, else 0",
          1 if line["ok"] else 0)
    gauge("mp3converter_backup_size_bytes", "Bytes of the last backup set", line["bytes"])
    gauge("mp3converter_backup_duration_seconds", "How long the last run took",
          line["duration_seconds"])
    push_to_gateway(url, job=PUSH_JOB, registry=registry, timeout=10)
