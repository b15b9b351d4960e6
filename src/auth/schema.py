"""Versioned schema: apply auth's migrations (``auth.migrations``) not yet recorded in
``schema_migrations``, one run at a time per database; the db-upgrade and db-status commands."""

import importlib
import pkgutil
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import click
import MySQLdb
from flask.cli import with_appcontext

from auth.migrations import columns

MIGRATIONS = "auth.migrations"
MODULE_NAME = re.compile(r"(\d{4})_[a-z0-9_]+")
RECORD = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INT UNSIGNED NOT NULL PRIMARY KEY,
    name VARCHAR(100) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB
"""
# A server-wide named lock, one per database (GET_LOCK names are at most 64 characters); the
# server releases it when the connection holding it ends, however it ends.
LOCK = "CONCAT('auth.schema.', MD5(DATABASE()))"
DEFAULT_WAIT_SECONDS = 300


@dataclass(frozen=True)
class Migration:
    """One numbered schema change: ``apply(cur)`` returns what it did, a line each."""

    version: int
    name: str
    summary: str
    apply: Callable[..., list[str]]


class SchemaLocked(Exception):
    """Another db-upgrade holds the database's schema lock."""


class MigrationFailed(Exception):
    """A migration stopped on a MySQL error; what it did so far stays."""


def available(package: str = MIGRATIONS) -> list[Migration]:
    """The migrations of ``package`` (modules ``NNNN_name``), in order."""
    found = []
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        match = MODULE_NAME.fullmatch(info.name)
        if match:
            module = importlib.import_module(f"{package}.{info.name}")
            summary = " ".join((module.__doc__ or "").split("\n\n")[0].replace("``", "").split())
            found.append(Migration(int(match.group(1)), info.name, summary, module.apply))
    found.sort(key=lambda m: m.version)
    for before, after in zip(found, found[1:], strict=False):
        if before.version == after.version:
            raise ValueError(f"two migrations numbered {after.version:04d}: {before.name}, "
                             f"{after.name}")
    return found


def recorded(cur) -> dict[int, tuple[str, str]]:
    """{version: (name, applied_at)} of the migrations applied (none before the first)."""
    if not columns(cur, "schema_migrations"):
        return {}
    cur.execute("SELECT version, name, DATE_FORMAT(applied_at, '%Y-%m-%d %H:%i:%s') "
                "FROM schema_migrations ORDER BY version")
    return {row[0]: (row[1], row[2]) for row in cur.fetchall()}


def upgrade(conn, migrations: Sequence[Migration], report: Callable[[str], None],
            wait_seconds: float = DEFAULT_WAIT_SECONDS) -> list[str]:
    """Apply the migrations not yet recorded, in order, each recorded once it is done;
    ``report`` gets one line per migration applied and each line it reports. Returns the
    names applied. Raises SchemaLocked when another run holds the lock past ``wait_seconds``;
    a migration that fails stops the run, its earlier steps staying (the next run redoes it)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT GET_LOCK({LOCK}, %s)", (wait_seconds,))
        if cur.fetchone()[0] != 1:
            raise SchemaLocked(f"another db-upgrade is running on this database (waited "
                               f"{wait_seconds:g} s); run it again once that one is done")
        try:
            return _apply_pending(cur, migrations, report)
        finally:
            try:
                cur.execute(f"SELECT RELEASE_LOCK({LOCK})")
            except (MySQLdb.OperationalError, MySQLdb.InterfaceError):
                pass  # the connection is gone, and the lock with it


def _apply_pending(cur, migrations: Sequence[Migration], report) -> list[str]:
    done = recorded(cur)
    known = {m.version for m in migrations}
    unknown = [name for version, (name, _at) in done.items() if version not in known]
    if unknown:
        report(f"WARNING: the database has migration(s) {', '.join(unknown)}, which this "
               "release does not know (a newer release applied them); left as they are")
    if not done and columns(cur, "users"):
        report("found tables but no migration recorded (made by a release before versioned "
               "migrations): bringing them forward")
    cur.execute(RECORD)
    applied = []
    for migration in migrations:
        if migration.version in done:
            continue
        try:
            lines = migration.apply(cur)
        except MySQLdb.Error as exc:
            raise MigrationFailed(f"migration {migration.name} stopped: {exc}; what it did so "
                                  "far stays, and the next db-upgrade completes it") from exc
        for line in lines:
            report(line)
        cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name))
        report(f"applied {migration.name}")
        applied.append(migration.name)
    return applied


def _echo(line: str) -> None:
    click.echo(line, err=line.startswith("WARNING"))


def _upgrade_or_exit(wait_seconds: float) -> None:
    from auth.db import get_db

    try:
        upgrade(get_db(), available(), _echo, wait_seconds)
    except (SchemaLocked, MigrationFailed) as exc:
        raise click.ClickException(str(exc)) from None
    except MySQLdb.Error as exc:
        raise click.ClickException(f"db-upgrade stopped on a MySQL error: {exc}") from None
    click.echo("users table ready")


WAIT = click.option("--wait", "wait_seconds", type=click.FloatRange(min=0),
                    default=DEFAULT_WAIT_SECONDS, show_default=True,
                    help="Seconds to wait while another db-upgrade runs on the database.")


@click.command("db-upgrade")
@with_appcontext
@WAIT
def db_upgrade_command(wait_seconds: float):
    """Apply the schema migrations the database lacks, in order (creates the tables on an
    empty database, brings those of an earlier release forward); each one applied is printed,
    warnings for the operator go to stderr."""
    _upgrade_or_exit(wait_seconds)


@click.command("init-db")
@with_appcontext
@WAIT
def init_db_command(wait_seconds: float):
    """The same as db-upgrade (its name before versioned migrations)."""
    _upgrade_or_exit(wait_seconds)


@click.command("db-status")
@with_appcontext
def db_status_command():
    """List the schema migrations, applied (when) or pending; changes nothing."""
    from auth.db import get_db

    try:
        with get_db().cursor() as cur:
            done = recorded(cur)
    except MySQLdb.Error as exc:
        raise click.ClickException(f"cannot read schema_migrations: {exc}") from None
    migrations = available()
    width = max(len(m.name) for m in migrations)
    for migration in migrations:
        state = f"applied {done[migration.version][1]}" if migration.version in done else (
            "pending")
        click.echo(f"{migration.name:<{width}}  {state:<27}  {migration.summary}")
    known = {m.version for m in migrations}
    for version, (name, applied_at) in done.items():
        if version not in known:
            click.echo(f"{name:<{width}}  applied {applied_at}  (unknown to this release)")
    pending = sum(m.version not in done for m in migrations)
    click.echo(f"{pending} pending" if pending else "up to date")


def init_app(app) -> None:
    """Register the schema commands."""
    app.cli.add_command(db_upgrade_command)
    app.cli.add_command(init_db_command)
    app.cli.add_command(db_status_command)
