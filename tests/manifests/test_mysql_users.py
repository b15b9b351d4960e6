"""MariaDB's `backup` user, made by the mysql-init-users Job, can dump auth's database and
trial-restore it into a scratch database, and can change nothing else.

The Job's own script runs here with sh and the real `mariadb` client against the test run's
MariaDB server; the dump and the trial restore are ops' own (src/ops/backup_mariadb.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import MySQLdb
import pytest

from common.settings import MySQLSettings
from ops import backup_mariadb
from ops.config import BackupSettings
from tests.manifests.helpers import find

pytestmark = pytest.mark.manifests


def job_script(objects: list[dict]) -> tuple[list[str], dict[str, str]]:
    """The Job's command and its plain (non-secret) environment."""
    [job] = find(objects, "Job", "mysql-init-users")
    [container] = job["spec"]["template"]["spec"]["containers"]
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return [*container["command"], *container["args"]], plain


def run_job(objects, server, database: str, password: str) -> subprocess.CompletedProcess:
    """The Job's script against ``server`` (root without a password), for ``database``."""
    if not shutil.which("mariadb"):
        pytest.fail("the mariadb client is needed (apt-get install mariadb-client)")
    argv, plain = job_script(objects)
    env = {"PATH": os.environ["PATH"], **plain, "MYSQL_HOST": server.host,
           "MYSQL_PORT": str(server.port), "MYSQL_DB": database,
           "MYSQL_PWD": server.password, "MARIADB_BACKUP_PASSWORD": password}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def as_user(settings: BackupSettings, statement: str, database: str | None = None) -> None:
    mysql = settings.mysql
    conn = MySQLdb.connect(host=mysql.host, port=mysql.port, user=mysql.user,
                           passwd=mysql.password, db=database or "")
    try:
        conn.cursor().execute(statement)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def auth_db(mariadb_server):
    """A database shaped like auth's (tables with rows, unique and foreign keys; like auth's, no
    view or trigger: their DEFINER would need SET USER to load as `backup`), dropped after."""
    name = f"authbk_{secrets.token_hex(3)}"
    conn = mariadb_server.connect()
    cur = conn.cursor()
    cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    cur.execute(f"USE {name}")
    cur.execute("CREATE TABLE users (id INT PRIMARY KEY AUTO_INCREMENT, email VARCHAR(255) "
                "COLLATE utf8mb4_bin NOT NULL UNIQUE, logins INT NOT NULL DEFAULT 0)")
    cur.execute("CREATE TABLE audit (user_id INT NOT NULL, at TIMESTAMP NOT NULL DEFAULT "
                "CURRENT_TIMESTAMP, FOREIGN KEY (user_id) REFERENCES users (id))")
    cur.executemany("INSERT INTO users (email, logins) VALUES (%s, %s)",
                    [(f"u{i}@example.com", i % 2) for i in range(25)])
    cur.execute("INSERT INTO audit (user_id) SELECT id FROM users")
    conn.commit()
    yield name
    cur.execute(f"DROP DATABASE IF EXISTS {name}")
    conn.close()


def settings_for(server, database: str, password: str) -> BackupSettings:
    return BackupSettings(backup_dir="", keep=1, release="", pushgateway_url="",
                          mysql=MySQLSettings(host=server.host, port=server.port, user="backup",
                                              password=password, db=database))


def test_backup_user_dumps_and_trial_restores_but_changes_nothing_live(
        rendered, mariadb_server, auth_db, tmp_path):
    password = secrets.token_urlsafe(32)
    out = run_job(rendered["minikube"], mariadb_server, auth_db, password)
    assert out.returncode == 0, out.stderr
    assert f"user backup may read database {auth_db}" in out.stdout
    settings = settings_for(mariadb_server, auth_db, password)

    # the nightly dump, and the trial restore that verifies it, as `backup`
    rows, _ = backup_mariadb.dump(settings, tmp_path / "auth.sql.gz")
    assert rows == {"users": 25, "audit": 25}
    scratch = f"{auth_db}_verify_{secrets.token_hex(4)}"
    backup_mariadb.create_database(settings, scratch)
    try:
        backup_mariadb.load(settings, tmp_path / "auth.sql.gz", scratch)
        assert backup_mariadb.row_counts(settings, scratch) == {"users": 25, "audit": 25}
    finally:
        backup_mariadb.drop_database(settings, scratch)
    assert backup_mariadb.table_count(settings, scratch) == 0

    # nothing live can change, and no other database can be made or dropped
    for statement in ("INSERT INTO users (email) VALUES ('x@example.com')",
                      "DELETE FROM users", "UPDATE users SET logins = 9",
                      "DROP TABLE audit", "CREATE TABLE extra (id INT)",
                      "ALTER TABLE users ADD COLUMN extra INT"):
        with pytest.raises(MySQLdb.OperationalError) as refused:
            as_user(settings, statement, auth_db)
        assert refused.value.args[0] in (1142, 1143, 1044), statement  # command denied
    for statement in (f"DROP DATABASE {auth_db}", f"CREATE DATABASE {auth_db}_other",
                      "CREATE DATABASE mysql_verify_x"):
        with pytest.raises(MySQLdb.OperationalError) as refused:
            as_user(settings, statement)
        assert refused.value.args[0] == 1044, statement  # access denied to database
    conn = mariadb_server.connect(db=auth_db)
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*), SUM(logins) FROM users")
    assert cur.fetchone() == (25, 12)
    conn.close()


def test_running_the_job_again_sets_the_new_password_and_keeps_the_grants(
        rendered, mariadb_server, auth_db, tmp_path):
    first, second = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    assert run_job(rendered["minikube"], mariadb_server, auth_db, first).returncode == 0
    out = run_job(rendered["minikube"], mariadb_server, auth_db, second)
    assert out.returncode == 0, out.stderr
    old = settings_for(mariadb_server, auth_db, first)
    with pytest.raises(MySQLdb.OperationalError) as refused:
        as_user(old, "SELECT 1")
    assert refused.value.args[0] == 1045  # access denied: the old password is gone
    new = settings_for(mariadb_server, auth_db, second)
    rows, _ = backup_mariadb.dump(new, tmp_path / "a.sql.gz")
    assert rows["users"] == 25


@pytest.mark.parametrize("password", ["", "it's", "back\\slash"])
def test_job_refuses_a_password_it_cannot_quote(rendered, mariadb_server, auth_db, password):
    out = run_job(rendered["minikube"], mariadb_server, auth_db, password)
    assert out.returncode == 1
    assert "MARIADB_BACKUP_PASSWORD must be set, without ' or \\" in out.stderr
