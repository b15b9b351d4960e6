"""Verify a backup set: every checksum, then a trial restore into scratch databases (dropped
afterwards) whose counts must match the manifest; records ``verified_at``."""

import contextlib
import logging
import secrets
import time
from pathlib import Path

from ops import backup_mariadb, backup_status, mongodump
from ops import manifest as manifests
from ops.restore import load_set

log = logging.getLogger(__name__)


def _differences(kind: str, expected: dict, found: dict, unit: str) -> list[str]:
    return [f"{kind} {name}: {found.get(name, 0)} {unit} restored, backup.json says "
            f"{expected.get(name, 0)}"
            for name in sorted(set(expected) | set(found))
            if found.get(name, 0) != expected.get(name, 0)]


def verify(settings, client, set_dir: Path) -> dict:
    """Check and trial-restore ``set_dir``; its manifest, now with ``verified_at``. Raises
    SetDamaged (naming the file or the table or collection) when anything differs."""
    set_dir = Path(set_dir)
    started = time.monotonic()
    manifest = manifests.check(set_dir)
    suffix = secrets.token_hex(4)
    mysql_scratch = f"{settings.mysql.db}_verify_{suffix}"
    # MongoDB grants roles on whole database names only: one fixed scratch name, emptied
    # before (a run killed half-way leaves it) and dropped after
    mongo_scratch = client[f"{manifest['mongodb']['database']}_verify"]
    client.drop_database(mongo_scratch.name)
    try:
        load_set(settings, set_dir, manifest, mysql_scratch, mongo_scratch, replace=True)
        rows = backup_mariadb.row_counts(settings, mysql_scratch)
        docs = {name: mongodump.count(mongo_scratch, name)
                for name in manifest["mongodb"]["collections"]}
    finally:
        with contextlib.suppress(Exception):
            backup_mariadb.drop_database(settings, mysql_scratch)
        with contextlib.suppress(Exception):
            client.drop_database(mongo_scratch.name)
    problems = (_differences("table", manifest["mariadb"]["tables"], rows, "rows")
                + _differences("collection", manifest["mongodb"]["collections"], docs,
                               "documents"))
    if problems:
        raise manifests.SetDamaged(f"{set_dir}: the trial restore differs: "
                                   + "; ".join(problems))
    manifest["verified_at"] = manifests.utc_now()
    manifest["verification"] = {"mariadb_rows": rows, "mongodb_documents": docs,
                                "duration_seconds": round(time.monotonic() - started, 3)}
    manifests.write(set_dir, manifest)
    log.info("backup set verified", extra={"set": str(set_dir)})
    return manifest


def run(settings, client, set_dir: Path) -> tuple[dict, bool]:
    """`python -m ops verify-backup PATH`: verify, then (a set of BACKUP_DIR) remove the sets
    it makes redundant; the final JSON line (also status.json, and pushed), and success."""
    from ops.backup import rotate  # the sets' directory; backup imports this module

    started_at, started = manifests.utc_now(), time.monotonic()
    set_dir = Path(set_dir).resolve()
    error, size = None, 0
    try:
        size = verify(settings, client, set_dir)["bytes"]
        if settings.backup_dir and set_dir.parent == Path(settings.backup_dir).resolve():
            rotate(set_dir.parent, settings.keep, set_dir)
    except (manifests.SetDamaged, backup_mariadb.ClientError, OSError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - MongoDB's errors among others: reported, exit 1
        error = f"{type(exc).__name__}: {exc}"
    line = {"event": "verify-backup", "ok": error is None, "set": str(set_dir),
            "started_at": started_at, "finished_at": manifests.utc_now(),
            "duration_seconds": round(time.monotonic() - started, 3), "bytes": size,
            "verified": error is None}
    if error:
        line["error"] = error
        log.error("backup set refused", extra={"error": error})
    # a set refused for a missing manifest is no set: nothing is written into that directory
    has_manifest = (set_dir / manifests.MANIFEST).is_file()
    return backup_status.record(settings, set_dir if has_manifest else None, line), \
        error is None
