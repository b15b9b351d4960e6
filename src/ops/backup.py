"""Backup sets in BACKUP_DIR: auth's MariaDB database and the MongoDB database, written into a
temporary directory and renamed into place only when complete; older sets removed once a newer
one is verified."""

import contextlib
import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ops import backup_mariadb, backup_status, backup_verify, mongodump
from ops import manifest as manifests

log = logging.getLogger(__name__)

SET_NAME = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")  # the set's UTC start time
PARTIAL = ".partial-"  # a set being written; never a set


def release(settings) -> tuple[str, str]:
    """The running release and where it was read: RELEASE, else `git describe` of the source
    tree, else the installed package's version."""
    if settings.release:
        return settings.release, "RELEASE"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"],
                              cwd=Path(__file__).parent, capture_output=True, text=True,
                              timeout=10)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip(), "git describe"
    try:
        return importlib.metadata.version("mp3converter"), "package version"
    except importlib.metadata.PackageNotFoundError:
        return "unknown", "none"


def sets(root: Path) -> list[Path]:
    """The complete sets in ``root``, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if SET_NAME.match(p.name) and (p / manifests.MANIFEST).is_file())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create(settings, mongo_db) -> Path:
    """Write one set into BACKUP_DIR; its path. Nothing is left behind when it fails."""
    root = Path(settings.backup_dir)
    root.mkdir(parents=True, exist_ok=True)
    started, created_at = time.monotonic(), manifests.utc_now()
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{name}-", dir=root))
    try:
        (partial / "mariadb").mkdir()
        sql_file = f"mariadb/{settings.mysql.db}.sql.gz"
        tables, entry = backup_mariadb.dump(settings, partial / sql_file)
        log.info("MariaDB database copied", extra={"tables": tables})
        directory = f"mongodb/{mongo_db.name}"
        counts, entries = mongodump.dump_database(mongo_db, partial / directory)
        files = {sql_file: entry, **{f"{directory}/{n}": e for n, e in entries.items()}}
        version, source = release(settings)
        manifest = {
            "format": manifests.FORMAT, "created_at": created_at,
            "finished_at": manifests.utc_now(),
            "duration_seconds": round(time.monotonic() - started, 3),
            "release": version, "release_source": source,
            "mariadb": {"database": settings.mysql.db, "file": sql_file, "tables": tables},
            "mongodb": {"database": mongo_db.name, "directory": directory,
                        "collections": counts},
            "bytes": sum(e["bytes"] for e in files.values()), "files": files,
            "verified_at": None,
        }
        manifests.write(partial, manifest)
        final, n = root / name, 1
        while final.exists():
            n += 1
            final = root / f"{name}-{n}"
        os.rename(partial, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def rotate(root: Path, keep: int, verified: Path) -> list[str]:
    """Delete the sets beyond the ``keep`` newest that are older than ``verified`` (a set
    just verified): a set goes only once a newer one has been verified. Their names."""
    every = sets(root)
    kept = set(every[-keep:])
    removed = [s for s in every if s not in kept and s.name < verified.name]
    for old in removed:
        shutil.rmtree(old)
        log.info("old backup set removed", extra={"set": old.name})
    return [s.name for s in removed]


def run(settings, mongo_db, verify: bool, client=None) -> tuple[dict, bool]:
    """`python -m ops backup [--verify]`: create a set (then verify it and rotate); the final
    JSON line (also the set's status.json, and pushed) and whether it all succeeded."""
    started_at, started = manifests.utc_now(), time.monotonic()
    set_dir, verified, error, size = None, False, None, 0
    try:
        set_dir = create(settings, mongo_db)
        size = manifests.read(set_dir)["bytes"]
        log.info("backup set written", extra={"set": str(set_dir), "bytes": size})
        if verify:
            backup_verify.verify(settings, client or mongo_db.client, set_dir)
            verified = True
            rotate(Path(settings.backup_dir), settings.keep, set_dir)
    except (backup_mariadb.ClientError, manifests.SetDamaged, OSError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - MongoDB's errors among others: reported, exit 1
        error = f"{type(exc).__name__}: {exc}"
    line = {"event": "backup", "ok": error is None, "set": str(set_dir) if set_dir else None,
            "started_at": started_at, "finished_at": manifests.utc_now(),
            "duration_seconds": round(time.monotonic() - started, 3), "bytes": size,
            "verified": verified}
    if error:
        line["error"] = error
        log.error("backup failed", extra={"error": error})
    return backup_status.record(settings, set_dir, line), error is None
