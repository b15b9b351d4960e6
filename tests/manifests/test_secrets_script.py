"""`make secrets` (scripts/k8s_secrets.py): consistent files, kept on a rerun, completed when
newer manifests need more, never half-replaced."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.manifests.helpers import ROOT

pytestmark = pytest.mark.manifests

SCRIPT = ROOT / "scripts" / "k8s_secrets.py"


def run(folder, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--dir", str(folder), *args],
                          capture_output=True, text=True, timeout=60)


def read(path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def snapshot(folder) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.glob("*.env"))}


def test_a_set_from_before_the_ops_user_is_completed_keeping_every_password(tmp_path):
    assert run(tmp_path).returncode == 0
    (tmp_path / "ops.env").unlink()
    mongodb = tmp_path / "mongodb.env"
    mongodb.write_text("".join(line + "\n" for line in mongodb.read_text().splitlines()
                               if not line.startswith("MONGODB_OPS_PASSWORD=")))
    before = snapshot(tmp_path)

    out = run(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "wrote" in out.stdout and "added MONGODB_OPS_PASSWORD" in out.stdout
    after = snapshot(tmp_path)
    assert after.keys() == before.keys() | {"ops.env"}
    for name, text in before.items():
        assert after[name].startswith(text), f"{name} changed beyond the added keys"
    password = read(mongodb)["MONGODB_OPS_PASSWORD"]
    ops = read(tmp_path / "ops.env")
    assert ops["MONGODB_URI"] == f"mongodb://ops:{password}@mongodb:27017/?authSource=admin"
    assert ops["RABBITMQ_URL"] == read(tmp_path / "gateway.env")["RABBITMQ_URL"]
    assert oct((tmp_path / "ops.env").stat().st_mode & 0o777) == "0o600"

    again = run(tmp_path)
    assert again.returncode == 0 and "already exist" in again.stdout
    assert snapshot(tmp_path) == after


def test_a_set_missing_a_database_password_is_left_alone(tmp_path):
    assert run(tmp_path).returncode == 0
    (tmp_path / "rabbitmq.env").unlink()
    (tmp_path / "ops.env").unlink()
    before = snapshot(tmp_path)
    out = run(tmp_path)
    assert out.returncode == 1
    assert "rabbitmq.env missing" in out.stderr and "--force" in out.stderr
    assert snapshot(tmp_path) == before

    assert run(tmp_path, "--force").returncode == 0
    replaced = snapshot(tmp_path)
    assert replaced.keys() == before.keys() | {"rabbitmq.env", "ops.env"}
    assert replaced["gateway.env"] != before["gateway.env"]


def test_a_set_from_before_the_backup_users_is_completed_keeping_every_password(tmp_path):
    assert run(tmp_path).returncode == 0
    for name in ("backup", "restore"):
        (tmp_path / f"{name}.env").unlink()
    added = ("MARIADB_BACKUP_PASSWORD", "MONGODB_BACKUP_PASSWORD", "MONGODB_RESTORE_PASSWORD")
    for name in ("mysql", "mongodb"):
        path = tmp_path / f"{name}.env"
        path.write_text("".join(line + "\n" for line in path.read_text().splitlines()
                                if not line.startswith(added)))
    before = snapshot(tmp_path)

    out = run(tmp_path)
    assert out.returncode == 0, out.stderr
    after = snapshot(tmp_path)
    assert after.keys() == before.keys() | {"backup.env", "restore.env"}
    for name, text in before.items():
        assert after[name].startswith(text), f"{name} changed beyond the added keys"
    mysql, mongodb = read(tmp_path / "mysql.env"), read(tmp_path / "mongodb.env")
    auth = read(tmp_path / "auth.env")
    backup, restore = read(tmp_path / "backup.env"), read(tmp_path / "restore.env")
    # the backup's MariaDB password is the one mysql-init-users gives `backup`; the restore's is
    # auth's own, which MariaDB already holds
    assert backup["MYSQL_PASSWORD"] == mysql["MARIADB_BACKUP_PASSWORD"]
    assert restore["MYSQL_PASSWORD"] == auth["MYSQL_PASSWORD"]
    assert mysql["MARIADB_BACKUP_PASSWORD"] not in (mysql["MARIADB_ROOT_PASSWORD"],
                                                   auth["MYSQL_PASSWORD"])
    for user, values in (("backup", backup), ("restore", restore)):
        password = mongodb[f"MONGODB_{user.upper()}_PASSWORD"]
        assert values["MONGODB_URI"] == f"mongodb://{user}:{password}@mongodb:27017/?authSource=admin"
        assert "RABBITMQ_URL" not in values, f"{user} has no business with the broker"
        assert oct((tmp_path / f"{user}.env").stat().st_mode & 0o777) == "0o600"


def test_a_set_from_before_the_rabbitmq_cluster_is_completed_keeping_every_password(tmp_path):
    assert run(tmp_path).returncode == 0
    (tmp_path / "rabbitmq-cluster.env").unlink()
    rabbitmq = tmp_path / "rabbitmq.env"
    rabbitmq.write_text("".join(line + "\n" for line in rabbitmq.read_text().splitlines()
                                if not line.startswith("RABBITMQ_ERLANG_COOKIE=")))
    before = snapshot(tmp_path)

    out = run(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "added RABBITMQ_ERLANG_COOKIE" in out.stdout
    after = snapshot(tmp_path)
    assert after.keys() == before.keys() | {"rabbitmq-cluster.env"}
    for name, text in before.items():
        assert after[name].startswith(text), f"{name} changed beyond the added keys"
    broker = read(rabbitmq)
    assert len(broker["RABBITMQ_ERLANG_COOKIE"]) >= 32
    # the same user and password as the single node's address, at each of the three nodes
    single = read(tmp_path / "gateway.env")["RABBITMQ_URL"]
    cluster = read(tmp_path / "rabbitmq-cluster.env")["RABBITMQ_URL"].split(",")
    assert cluster == [single.replace("@rabbitmq:", f"@rabbitmq-{n}.rabbitmq:") for n in range(3)]
    assert f"{broker['RABBITMQ_DEFAULT_USER']}:{broker['RABBITMQ_DEFAULT_PASS']}@" in single
    assert oct((tmp_path / "rabbitmq-cluster.env").stat().st_mode & 0o777) == "0o600"
