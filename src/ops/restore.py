"""Restore a backup set: every checksum first, then auth's MariaDB database, then MongoDB, then
the jobs reconciled with the files restored with them.

The owners' usage documents (``common.usage``, ``mongodump.DERIVED``) are not in a set: the
target's are removed before the jobs are loaded, and each owner's is computed from the restored
jobs when it is first read, or by the sweep (``ops.upkeep.reconcile_usage``), whichever comes
first; one a transition makes meanwhile is ``partial``, not trusted until computed."""

import logging
import time
from pathlib import Path

from common.jobs import Jobs
from ops import backup_mariadb, mongodump, upkeep
from ops import manifest as manifests

log = logging.getLogger(__name__)

# Counters and leases, not data: replaced by the set's whatever they hold (the gateway and the
# sweep write them).
EPHEMERAL = ("uploads", "rate_limits", "leases")


class TargetNotEmpty(Exception):
    """A database to restore into holds data, and --force was not given."""


def load_set(settings, set_dir: Path, manifest: dict, mysql_db: str, mongo_db,
             replace: bool) -> dict:
    """Load the set into MariaDB database ``mysql_db`` and MongoDB database ``mongo_db``
    (created if need be); ``replace`` drops each collection before it is restored (the dump
    drops and re-creates each of its tables in any case). What was loaded."""
    backup_mariadb.create_database(settings, mysql_db)
    backup_mariadb.load(settings, set_dir / manifest["mariadb"]["file"], mysql_db)
    directory = set_dir / manifest["mongodb"]["directory"]
    names = mongodump.restore_order(name for name in manifest["mongodb"]["collections"]
                                    if name not in mongodump.DERIVED)
    mongodump.drop_collections(mongo_db, [*(names if replace else
                                            [name for name in names if name in EPHEMERAL]),
                                          *mongodump.DERIVED])
    collections, indexes = {}, 0
    for name in names:
        collections[name], created = mongodump.restore_collection(mongo_db, directory, name)
        indexes += created
        log.info("collection restored", extra={"collection": name,
                                               "documents": collections[name]})
    return {"mariadb": {"database": mysql_db, "tables": len(manifest["mariadb"]["tables"])},
            "mongodb": {"database": mongo_db.name, "collections": collections,
                        "indexes": indexes}}


def holdings(settings, mysql_db: str, mongo_db) -> list[str]:
    """What the target databases hold, one phrase per database that holds data."""
    found = []
    rows = {t: n for t, n in backup_mariadb.row_counts_if_exists(settings, mysql_db).items()
            if n}
    if rows:
        found.append(f"MariaDB database {mysql_db} holds data ("
                     + ", ".join(f"{t}: {n} rows" for t, n in sorted(rows.items())) + ")")
    docs = {}
    for name in mongodump.collection_names(mongo_db):
        if name in EPHEMERAL or name.endswith(".chunks"):
            continue
        if mongo_db[name].find_one({}, {"_id": 1}) is not None:
            docs[name] = mongodump.count(mongo_db, name)
    if docs:
        found.append(f"MongoDB database {mongo_db.name} holds data ("
                     + ", ".join(f"{n}: {c} documents" for n, c in docs.items()) + ")")
    return found


def restore(config, store, set_dir: Path, force: bool) -> dict:
    """Check the set, refuse targets holding data unless ``force``, load it into MYSQL_DB and
    MONGODB_DB, reconcile the jobs; what was done. Raises SetDamaged, TargetNotEmpty."""
    started = time.monotonic()
    set_dir = Path(set_dir)
    manifest = manifests.check(set_dir)
    settings = config.backup
    held = holdings(settings, settings.mysql.db, store.db)
    if held and not force:
        raise TargetNotEmpty("refusing to restore over data: " + "; ".join(held)
                             + ". Pass --force to replace it with the backup set's")
    loaded = load_set(settings, set_dir, manifest, settings.mysql.db, store.db, replace=force)
    reconciled = upkeep.reconcile_restored(Jobs(store, config.lifecycle))
    return {"event": "restore", "set": str(set_dir), "created_at": manifest.get("created_at"),
            "release": manifest.get("release"), "forced": bool(held) and force,
            **loaded, "reconciled": reconciled,
            "duration_seconds": round(time.monotonic() - started, 3)}
