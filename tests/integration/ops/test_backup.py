"""`python -m ops backup | verify-backup | restore` against the real MariaDB server (through
mariadb-dump and mariadb) and nx-27017, run as an operator runs them."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pymongo
import pytest

from common.settings import MongoSettings
from common.store import MP3S, VIDEOS, Store
from tests.conftest import mysql_database
from tools import devstack, monitoring
from tools.prometheus import PrometheusApi, prometheus_process, pushgateway_process

pytestmark = pytest.mark.integration

TRICKY = "o'brien\\ \"quoted\"\nline two\tand a tab; INSERT INTO `users` VALUES (1);"


def ops(env: dict, *args: str) -> subprocess.CompletedProcess:
    """``python -m ops ARGS`` with ``env``, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "ops", *args], env=devstack.process_env(env),
                          cwd=devstack.ROOT, capture_output=True, text=True, timeout=300)


def last_json(out: subprocess.CompletedProcess) -> dict:
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def databases(mariadb_server, mongodb_uri):
    """A MariaDB database (its user may also create and drop `<db>_verify_*`) and a MongoDB
    database name; ops' environment for them."""
    with mysql_database(mariadb_server) as mysql:
        name = mysql["MYSQL_DB"]
        with contextlib.closing(mariadb_server.connect()) as conn, conn.cursor() as cur:
            for host in ("localhost", "127.0.0.1"):
                cur.execute(f"GRANT ALL ON `{name}\\_verify\\_%`.* TO '{name}'@'{host}'")
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
               "MONGODB_URI": mongodb_uri, "MONGODB_DB": f"mp3test_bk_{secrets.token_hex(4)}",
               "LOG_LEVEL": "INFO", **mysql}
        try:
            yield env
        finally:
            pymongo.MongoClient(mongodb_uri).drop_database(env["MONGODB_DB"])


def fill(env: dict, mariadb_server) -> dict[str, bytes]:
    """Rows in MariaDB, jobs, counters and GridFS files (one of 3.5 chunks, one empty, chunks
    of an upload never finished) in MongoDB; the files' contents by id."""
    with contextlib.closing(mariadb_server.connect(database=env["MYSQL_DB"],
                                                   charset="utf8mb4")) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(255) "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, note TEXT, pic BLOB)")
            cur.execute("CREATE TABLE empty_one (id INT PRIMARY KEY)")
            rows = [(i, f"user{i}@exämple.com", TRICKY if i % 2 else None, bytes([i, 0, 10, 39]))
                    for i in range(1, 8)]
            cur.executemany("INSERT INTO users VALUES (%s, %s, %s, %s)", rows)
        conn.commit()
    store = Store(MongoSettings(env["MONGODB_URI"], env["MONGODB_DB"]))
    contents = {}
    try:
        store.jobs.insert_many([{"owner": "a" * 32, "status": "done", "n": i, "tags": ["x"]}
                                for i in range(3)])
        store.db["rate_limits"].insert_one({"_id": "login/x", "count": 1})
        store.db["rate_limits"].create_index("expireAt", expireAfterSeconds=0)
        for bucket, data in ((VIDEOS, os.urandom(3 * 1024 * 1024 + 512 * 1024)), (MP3S, b"")):
            writer = store.open_upload(bucket, "f.bin", {"owner": "a" * 32})
            writer.write(data)
            contents[str(writer.close())] = data
        unfinished = store.open_upload(VIDEOS, "g.bin", {"owner": "a" * 32})
        unfinished.write(os.urandom(1024 * 1024 + 5))  # one chunk written, no file document
    finally:
        store.close()
    return contents


@pytest.fixture
def source(mariadb_server, mongodb_uri, tmp_path):
    """Filled databases and BACKUP_DIR; (env, file contents)."""
    with databases(mariadb_server, mongodb_uri) as env:
        env["BACKUP_DIR"] = str(tmp_path / "backups")
        yield env, fill(env, mariadb_server)


def test_a_set_holds_everything_in_mongodumps_layout_and_verifies(source, mariadb_server):
    env, contents = source
    out = ops(env, "backup", "--verify")
    assert out.returncode == 0, out.stdout + out.stderr
    line = last_json(out)
    assert line["event"] == "backup" and line["ok"] and line["verified"], line
    set_dir = Path(line["set"])
    assert set_dir.parent == Path(env["BACKUP_DIR"]) and line["bytes"] > 3 * 1024 * 1024
    manifest = json.loads((set_dir / "backup.json").read_text())
    assert json.loads((set_dir / "status.json").read_text()) == line
    assert manifest["verified_at"] and manifest["release"] and manifest["created_at"]
    assert manifest["mariadb"]["tables"] == {"users": 7, "empty_one": 0}
    db = env["MONGODB_DB"]
    assert manifest["mongodb"]["collections"] == {
        "jobs": 3, "uploads": 0, "rate_limits": 1, "mp3s.files": 1, "mp3s.chunks": 0,
        "videos.files": 2, "videos.chunks": 5}  # nx lists chunks with no file as a file
    for rel, entry in manifest["files"].items():
        data = (set_dir / rel).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, rel
    assert {p.relative_to(set_dir).as_posix() for p in set_dir.rglob("*") if p.is_file()} == {
        *manifest["files"], "backup.json", "status.json"}
    assert f"mongodb/{db}/videos.chunks.bson.gz" in manifest["files"]
    dump = gzip.decompress((set_dir / manifest["mariadb"]["file"]).read_bytes()).decode()
    assert "INSERT INTO `users`" in dump and env["MYSQL_PASSWORD"] not in dump
    # the scratch databases of the trial restore are gone
    with contextlib.closing(mariadb_server.connect()) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        assert not [r for r in cur.fetchall() if "_verify_" in r[0]]
    assert not [d for d in pymongo.MongoClient(env["MONGODB_URI"]).list_database_names()
                if d.startswith(f"{db}_verify")]


def test_a_set_restores_into_empty_databases_and_refuses_ones_holding_data(
        source, mariadb_server, mongodb_uri):
    env, contents = source
    out = ops(env, "backup")
    assert out.returncode == 0, out.stdout + out.stderr
    set_dir = last_json(out)["set"]
    refused = ops(env, "restore", set_dir)
    assert refused.returncode == 1
    assert (f"MariaDB database {env['MYSQL_DB']} holds data (users: 7 rows)" in refused.stderr
            and f"MongoDB database {env['MONGODB_DB']} holds data (jobs: 3 documents"
            in refused.stderr and "--force" in refused.stderr), refused.stderr
    with databases(mariadb_server, mongodb_uri) as target:
        done = ops(target, "restore", set_dir)
        assert done.returncode == 0, done.stdout + done.stderr
        report = last_json(done)
        assert report["mongodb"]["collections"]["videos.chunks"] == 5
        with contextlib.closing(mariadb_server.connect(database=target["MYSQL_DB"],
                                                       charset="utf8mb4")) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT id, email, note, pic FROM users ORDER BY id")
                rows = cur.fetchall()
        assert len(rows) == 7 and rows[0][1] == "user1@exämple.com" and rows[0][2] == TRICKY
        assert rows[2][3] == bytes([3, 0, 10, 39])
        store = Store(MongoSettings(mongodb_uri, target["MONGODB_DB"]))
        try:
            for fid, data in contents.items():
                assert store.open_download(VIDEOS if data else MP3S, fid).read() == data
            assert store.jobs.count_documents({"owner": "a" * 32}) == 3
            assert any(ix.get("expireAfterSeconds") == 0
                       for ix in store.db["rate_limits"].list_indexes())
        finally:
            store.close()
        # again over what it restored: refused, then replaced with --force
        assert ops(target, "restore", set_dir).returncode == 1
        forced = ops(target, "restore", set_dir, "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert last_json(forced)["forced"] is True


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_damaged_set_is_refused_by_verify_and_restore_naming_the_file(
        source, mariadb_server, mongodb_uri, tmp_path):
    env, _ = source
    out = ops(env, "backup")
    assert out.returncode == 0, out.stdout + out.stderr
    good = Path(last_json(out)["set"])
    db = env["MONGODB_DB"]
    damages = {
        "flipped": (f"mongodb/{db}/jobs.bson.gz", flip_byte,
                    "checksum does not match backup.json"),
        "missing": (f"mongodb/{db}/videos.chunks.metadata.json", Path.unlink,
                    "missing (listed in backup.json)"),
        "extra": ("mariadb/notes.txt", lambda p: p.write_text("x"), "not listed in backup.json"),
    }
    with databases(mariadb_server, mongodb_uri) as target:
        for name, (rel, damage, reason) in damages.items():
            bad = tmp_path / name
            shutil.copytree(good, bad)
            damage(bad / rel)
            for args in (("verify-backup", str(bad)), ("restore", str(bad))):
                refused = ops(target, *args)
                assert refused.returncode == 1, (args, refused.stdout, refused.stderr)
                assert f"{bad / rel}: {reason}" in refused.stderr, (args, refused.stderr)
            # restore wrote nothing
            with contextlib.closing(mariadb_server.connect(database=target["MYSQL_DB"])) as c:
                with c.cursor() as cur:
                    cur.execute("SHOW TABLES")
                    assert cur.fetchall() == ()
            assert pymongo.MongoClient(mongodb_uri)[target["MONGODB_DB"]]["jobs"].find_one() \
                is None
        refused = last_json(ops(target, "verify-backup", str(tmp_path / "flipped")))
        assert refused["ok"] is False and refused["verified"] is False
    assert ops(env, "verify-backup", str(good)).returncode == 0


def test_old_sets_go_only_once_a_newer_one_is_verified(source):
    env, _ = source
    env["BACKUP_KEEP"] = "2"
    names = []
    for _ in range(3):
        out = ops(env, "backup")  # not verified: nothing is removed
        assert out.returncode == 0, out.stdout + out.stderr
        names.append(Path(last_json(out)["set"]).name)
    root = Path(env["BACKUP_DIR"])
    assert sorted(p.name for p in root.iterdir()) == sorted(names)
    out = ops(env, "backup", "--verify")
    assert out.returncode == 0, out.stdout + out.stderr
    newest = Path(last_json(out)["set"]).name
    assert sorted(p.name for p in root.iterdir()) == sorted([names[-1], newest])


def test_backup_without_backup_dir_stops_with_a_clear_message(source):
    env, _ = source
    del env["BACKUP_DIR"]
    out = ops(env, "backup")
    assert out.returncode == 2
    assert "BACKUP_DIR is required" in out.stderr


def test_each_backup_reports_to_a_pushgateway_that_prometheus_alerts_on(source, tmp_path):
    """The backup runs as a short-lived Job: it pushes its outcome to a Pushgateway, which a
    real Prometheus scrapes (keeping the pushed labels) and evaluates the backup alerts on."""
    env, _ = source
    gateway = pushgateway_process(tmp_path / "pushgateway")
    gateway.start().wait_ready(30)
    prometheus = prometheus_process({"pushgateway": f"http://127.0.0.1:{gateway.port}/metrics"},
                                    tmp_path / "prometheus", rules=monitoring.rules_file(),
                                    honor_labels=True)
    try:
        prometheus.start().wait_ready(30)
        api = PrometheusApi(prometheus)
        # Nothing pushed yet: no verified set, which BackupMissing notices at once (pending).
        api.wait_for('ALERTS{alertname="BackupMissing"}', lambda v: v == 1)
        env["PUSHGATEWAY_URL"] = f"http://127.0.0.1:{gateway.port}"
        started = time.time()
        out = ops(env, "backup", "--verify")
        assert out.returncode == 0, out.stdout + out.stderr
        api.wait_for('mp3converter_backup_success{job="mp3converter-backup"}', lambda v: v == 1)
        verified = api.value("mp3converter_backup_last_verified_timestamp_seconds")
        assert started - 1 <= verified <= time.time()
        assert api.value("mp3converter_backup_size_bytes") > 0
        api.wait_for('count(ALERTS{alertname=~"Backup.*"}) or vector(0)', lambda v: v == 0)

        failed = ops({**env, "MYSQL_PASSWORD": "not the password"}, "backup")
        assert failed.returncode != 0
        api.wait_for("mp3converter_backup_success", lambda v: v == 0)
        api.wait_for('ALERTS{alertname="BackupFailed"}', lambda v: v == 1)
        # The set verified before still counts: the failure is not also a missing backup.
        assert api.value("mp3converter_backup_last_verified_timestamp_seconds") == verified
        assert api.value('ALERTS{alertname="BackupMissing"}') is None
    finally:
        prometheus.terminate(10)
        gateway.terminate(10)
