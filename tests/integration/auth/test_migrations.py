"""auth's versioned schema: `db-upgrade` applies each migration once, in order, on an empty
database, on the tables of an earlier release, after a run that stopped half-way, and when two
runs start at once."""

import contextlib
import os
import re
import subprocess
import time
from base64 import b64encode

import pytest

from auth import create_app, db, schema
from auth.migrations import columns
from auth.passwords import hash_password
from tests.integration.auth.conftest import Runner, auth_config, smtp_settings
from tools.devstack import BIN, process_env
from tools.isolation import mysql_database
from tools.processes import ROOT

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
# The tables as the release of commit 221aa6a made them (no account ids, addresses compared
# under a case- and accent-insensitive collation) ...
RELEASE_221AA6A = ["""
CREATE TABLE users (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    verify_sent_at TIMESTAMP NULL DEFAULT NULL,
    UNIQUE KEY users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
""", """
CREATE TABLE deleted_users (
    email VARCHAR(254) NOT NULL,
    deleted_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY deleted_users_at (deleted_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""]
# ... and as the last release before versioned migrations made them (commit 3ce23eb).
RELEASE_3CE23EB = ["""
CREATE TABLE users (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    account_id CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    verify_sent_at TIMESTAMP NULL DEFAULT NULL,
    UNIQUE KEY users_email (email),
    UNIQUE KEY users_account_id (account_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
""", """
CREATE TABLE deleted_users (
    account_id CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
    email VARCHAR(254) NOT NULL,
    deleted_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY deleted_users_at (deleted_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""]
NAMES = [m.name for m in schema.available()]
# What the earlier release's users typed at registration, and what they are stored as after.
ADDRESSES = {"Mixed.Case@Example.COM": "mixed.case@example.com",
             "plain@example.com": "plain@example.com"}


@pytest.fixture(scope="module")
def password_hash() -> str:
    """One argon2 hash of PASSWORD for every row the tests insert."""
    return hash_password(PASSWORD)


@contextlib.contextmanager
def database(prefix, mariadb_server, mailsink):
    """A throw-away database: yields (auth app, raw connection)."""
    with mysql_database(prefix, mariadb_server) as settings:
        config = auth_config(settings, smtp_settings(mailsink.host, mailsink.port))
        conn = db.connect(config)
        try:
            yield create_app({"AUTH": config, "TESTING": True}), conn, settings
        finally:
            conn.close()


def shape(conn) -> tuple:
    """Every table's columns (type, nullability, default, collation), indexes and options."""
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT,"
                    " COLLATION_NAME, EXTRA FROM information_schema.COLUMNS"
                    " WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1, 2")
        columns = cur.fetchall()
        cur.execute("SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME"
                    " FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()"
                    " ORDER BY 1, 2, 4")
        indexes = cur.fetchall()
        cur.execute("SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1")
        return columns, indexes, cur.fetchall()


def recorded(conn) -> list[tuple]:
    """(version, name, applied_at) of schema_migrations."""
    with conn.cursor() as cur:
        cur.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        return list(cur.fetchall())


def applied_lines(output: str) -> list[str]:
    """The migrations a run says it applied, in order."""
    return re.findall(r"^applied (\S+)$", output, flags=re.M)


def earlier_release(conn, tables: list[str], password_hash: str) -> None:
    """Create the tables of an earlier release with its accounts in them (as typed at
    registration before addresses had a canonical form)."""
    with conn.cursor() as cur:
        for statement in tables:
            cur.execute(statement)
        with_ids = "account_id" in tables[0]
        for n, (typed, stored) in enumerate(ADDRESSES.items()):
            cur.execute("INSERT INTO users (email, password_hash, verified"
                        + (", account_id" if with_ids else "") + ") VALUES (%s, %s, TRUE"
                        + (", %s" if with_ids else "") + ")",
                        (stored, password_hash, f"{n:032x}") if with_ids
                        else (typed, password_hash))
        cur.execute("INSERT INTO deleted_users (email) VALUES ('gone@example.com')")


def login(app, email: str) -> int:
    raw = b64encode(f"{email}:{PASSWORD}".encode()).decode()
    return app.test_client().post("/login", headers={"Authorization": f"Basic {raw}"}).status_code


@pytest.fixture(scope="module")
def fresh_shape(mariadb_server, mailsink):
    """The schema db-upgrade makes on an empty database."""
    with database("mp3fresh", mariadb_server, mailsink) as (app, conn, _settings):
        assert Runner(app).invoke(args=["db-upgrade"]).exit_code == 0
        return shape(conn)


def test_an_empty_database_gets_every_migration_once_and_a_rerun_changes_nothing(
        mariadb_server, mailsink, fresh_shape):
    assert [name[:4] for name in NAMES] == ["0001", "0002", "0003", "0004", "0005", "0006"]
    with database("mp3new", mariadb_server, mailsink) as (app, conn, _settings):
        runner = Runner(app)
        before = runner.invoke(args=["db-status"])
        assert before.exit_code == 0, before.output
        assert before.output.count(" pending ") == len(NAMES)
        assert before.output.endswith(f"\n{len(NAMES)} pending\n")

        first = runner.invoke(args=["db-upgrade"])
        assert first.exit_code == 0, first.output
        assert applied_lines(first.output) == NAMES
        assert "found tables" not in first.output and "WARNING" not in first.output
        assert first.output.endswith("users table ready\n")
        rows = recorded(conn)
        assert [(version, name) for version, name, _at in rows] == [
            (int(name[:4]), name) for name in NAMES]
        assert shape(conn) == fresh_shape

        again = runner.invoke(args=["db-upgrade"])
        assert again.exit_code == 0 and again.output == "users table ready\n"
        alias = runner.invoke(args=["init-db"])
        assert alias.exit_code == 0 and alias.output == "users table ready\n"
        assert recorded(conn) == rows and shape(conn) == fresh_shape

        after = runner.invoke(args=["db-status"])
        assert after.output.count(" applied ") == len(NAMES)
        assert after.output.endswith("\nup to date\n")
        # A database a newer release has upgraded: what this one does not know is left alone.
        with conn.cursor() as cur:
            cur.execute("INSERT INTO schema_migrations (version, name) VALUES (99, '0099_later')")
        newer = runner.invoke(args=["db-upgrade"])
        assert newer.exit_code == 0, newer.output
        assert "WARNING: the database has migration(s) 0099_later, which this release does " \
               "not know" in newer.output
        assert "0099_later" in runner.invoke(args=["db-status"]).output
        with conn.cursor() as cur:
            cur.execute("DELETE FROM schema_migrations WHERE version = 99")
        # The tables are the ones the service works with.
        made = runner.invoke(args=["create-user", "new@example.com", "--password-stdin"],
                             input=f"{PASSWORD}\n")
        assert made.exit_code == 0, made.output
        assert login(app, "NEW@example.com") == 200


@pytest.mark.parametrize("release", [RELEASE_221AA6A, RELEASE_3CE23EB],
                         ids=["221aa6a", "3ce23eb"])
def test_the_tables_of_an_earlier_release_are_brought_forward(
        mariadb_server, mailsink, fresh_shape, password_hash, release):
    with database("mp3old", mariadb_server, mailsink) as (app, conn, _settings):
        earlier_release(conn, release, password_hash)
        first = Runner(app).invoke(args=["db-upgrade"])
        assert first.exit_code == 0, first.output
        assert "found tables but no migration recorded" in first.output
        assert applied_lines(first.output) == NAMES
        assert shape(conn) == fresh_shape
        with conn.cursor() as cur:
            cur.execute("SELECT email FROM users ORDER BY id")
            assert [row[0] for row in cur.fetchall()] == list(ADDRESSES.values())
        for typed in ADDRESSES:
            assert login(app, typed.upper()) == 200, typed
        again = Runner(app).invoke(args=["db-upgrade"])
        assert again.exit_code == 0 and again.output == "users table ready\n"


class Stopped(Exception):
    """The upgrade was stopped, as if its process had been killed."""


class StopBefore:
    """A connection that stops the program before its statement number ``at`` (counting from
    0) and every one after it; ``count`` says how many it ran."""

    def __init__(self, conn, at: float = float("inf")):
        self.conn, self.at, self.count, self.writes = conn, at, 0, []

    def cursor(self, *args):
        return _StoppingCursor(self.conn.cursor(*args), self)


class _StoppingCursor:
    def __init__(self, cur, owner: StopBefore):
        self.cur, self.owner = cur, owner

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cur.close()

    def __getattr__(self, name):
        return getattr(self.cur, name)

    def execute(self, query, args=None):
        owner = self.owner
        if owner.count >= owner.at:
            raise Stopped(query)
        if not query.lstrip().upper().startswith("SELECT"):
            owner.writes.append(owner.count)
        owner.count += 1
        return self.cur.execute(query, args)


def test_an_upgrade_stopped_before_any_of_its_writes_is_completed_by_the_next_run(
        mariadb_server, mailsink, fresh_shape, password_hash):
    """Stop a run on an earlier release's tables before each statement that changes something
    (DDL commits at once: what ran stays), then run db-upgrade: the result is the same."""
    migrations = schema.available()
    with database("mp3cut", mariadb_server, mailsink) as (app, conn, settings):
        def reset():
            with conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS users, deleted_users, api_keys, "
                            "schema_migrations")
            earlier_release(conn, RELEASE_221AA6A, password_hash)

        reset()
        counted = StopBefore(conn)
        schema.upgrade(counted, migrations, lambda line: None)
        writes = counted.writes
        assert len(writes) >= 15, writes  # CREATE, ALTER, UPDATE and INSERT statements
        for at in writes:
            reset()
            stopped = db.connect(app.config["AUTH"])
            with pytest.raises(Stopped):
                schema.upgrade(StopBefore(stopped, at), migrations, lambda line: None)
            stopped.close()  # the server releases the lock
            done = len(recorded(conn)) if at > writes[0] else 0
            rerun = Runner(app).invoke(args=["db-upgrade", "--wait", "5"])
            assert rerun.exit_code == 0, (at, rerun.output)
            assert applied_lines(rerun.output) == NAMES[done:], at
            assert shape(conn) == fresh_shape, at
            with conn.cursor() as cur:
                cur.execute("SELECT email, account_id FROM users ORDER BY id")
                rows = cur.fetchall()
            assert [email for email, _id in rows] == list(ADDRESSES.values()), at
            assert len({account_id for _email, account_id in rows}) == len(rows), at
            assert len(recorded(conn)) == len(NAMES)
        assert login(app, "mixed.case@EXAMPLE.com") == 200


def test_an_upgrade_says_why_it_stopped(mariadb_server, mailsink, unreachable_config):
    unreachable = create_app({"AUTH": unreachable_config, "TESTING": True})
    result = Runner(unreachable).invoke(args=["db-upgrade"])
    assert result.exit_code == 1
    assert "db-upgrade stopped on a MySQL error" in result.output
    assert "Can't connect" in result.output and "Traceback" not in result.output

    def broken(cur):  # adds a column, then fails
        cur.execute("ALTER TABLE users ADD COLUMN nickname VARCHAR(40) NULL")
        cur.execute("ALTER TABLE users ADD COLUMN nickname VARCHAR(40) NULL")
        return []

    def fixed(cur):
        if "nickname" not in columns(cur, "users"):
            cur.execute("ALTER TABLE users ADD COLUMN nickname VARCHAR(40) NULL")
        return ["added column users.nickname"]

    later = schema.available()
    with database("mp3fail", mariadb_server, mailsink) as (app, conn, _settings):
        with pytest.raises(schema.MigrationFailed, match=r"migration 0007_nickname stopped: "
                           r".*Duplicate column name.*the next db-upgrade completes it"):
            schema.upgrade(conn, later + [schema.Migration(7, "0007_nickname", "", broken)],
                           lambda line: None)
        assert [name for _v, name, _at in recorded(conn)] == NAMES
        lines = []
        schema.upgrade(conn, later + [schema.Migration(7, "0007_nickname", "", fixed)],
                       lines.append)
        assert lines == ["added column users.nickname", "applied 0007_nickname"]


def _flask(args, settings):
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "PYTHONPATH") if k in os.environ}
    env = process_env({**base, **settings, "JWT_SECRET": "x" * 32})
    return subprocess.Popen([str(BIN / "flask"), "--app", "auth", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_upgrades_at_once_apply_each_migration_once(mariadb_server, mailsink):
    with database("mp3race", mariadb_server, mailsink) as (app, conn, settings):
        with conn.cursor() as cur:  # as a db-upgrade in progress does
            cur.execute(f"SELECT GET_LOCK({schema.LOCK}, 0)")
            assert cur.fetchone() == (1,)
        runs = [_flask(["db-upgrade"], settings), _flask(["init-db"], settings)]
        try:
            refused = Runner(app).invoke(args=["db-upgrade", "--wait", "1"])
            assert refused.exit_code == 1
            assert "another db-upgrade is running on this database (waited 1 s)" in (
                refused.output)
            deadline = time.monotonic() + 30
            with conn.cursor() as cur:
                while True:  # both wait for the lock
                    cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                                " WHERE DB = DATABASE() AND STATE = 'User lock'")
                    if cur.fetchone()[0] == 2:
                        break
                    assert time.monotonic() < deadline, [r.poll() for r in runs]
                    time.sleep(0.05)
                cur.execute(f"SELECT RELEASE_LOCK({schema.LOCK})")
            outputs = [run.communicate(timeout=60) for run in runs]
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.wait()
        assert [run.returncode for run in runs] == [0, 0], outputs
        assert sorted(applied_lines(outputs[0][0]) + applied_lines(outputs[1][0])) == NAMES
        assert all(out.endswith("users table ready\n") for out, _err in outputs)
        assert [name for _v, name, _at in recorded(conn)] == NAMES
