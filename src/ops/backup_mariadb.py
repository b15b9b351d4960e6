"""auth's MariaDB database through the real client programs: ``mariadb-dump`` in one
transaction, gzipped; restored by piping the dump into ``mariadb``.

The password reaches the programs through a temporary defaults file (mode 0600), never argv.
"""

import contextlib
import gzip
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ops.manifest import READ_SIZE, HashingWriter

GZIP_LEVEL = 6
# One row per INSERT (counted while the dump streams, checked again by a trial restore), each
# table's rows in one commit when restored.
DUMP_OPTIONS = ("--single-transaction", "--skip-extended-insert", "--no-autocommit",
                "--hex-blob", "--no-tablespaces", "--triggers", "--default-character-set=utf8mb4")
INSERT, CREATE = b"INSERT INTO `", b"CREATE TABLE `"
HEAD_BYTES = 256


class ClientError(Exception):
    """A MariaDB client program failed or is missing (the message says which, and why)."""


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ClientError(f"{name} is not installed (Debian: apt-get install mariadb-client)")
    return path


def quote_name(name: str) -> str:
    """A MariaDB identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


def quote_string(value: str) -> str:
    """A MariaDB string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _option(value) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def defaults_file(settings) -> Iterator[str]:
    """A ``[client]`` options file with the connection and password, readable by us only."""
    fd, path = tempfile.mkstemp(prefix="ops-mariadb-", suffix=".cnf")
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            mysql = settings.mysql
            f.write(f"[client]\nhost={_option(mysql.host)}\nport={int(mysql.port)}\n"
                    f"user={_option(mysql.user)}\npassword={_option(mysql.password)}\n"
                    "protocol=TCP\n")
        yield path
    finally:
        os.unlink(path)


def _failure(argv0: str, code: int, stderr: bytes) -> ClientError:
    text = stderr.decode(errors="replace").strip().splitlines()
    return ClientError(f"{os.path.basename(argv0)} exited with {code}: "
                       f"{text[-1] if text else 'no message'}")


def sql(settings, statement: str, database: str | None = None) -> list[list[str]]:
    """Run one statement with the ``mariadb`` client; its rows, tab-separated fields."""
    with defaults_file(settings) as cnf:
        argv = [_program("mariadb"), f"--defaults-extra-file={cnf}", "--batch",
                "--skip-column-names", "--raw", "-e", statement]
        if database:
            argv.append(database)
        done = subprocess.run(argv, capture_output=True, timeout=600)
    if done.returncode != 0:
        raise _failure(argv[0], done.returncode, done.stderr)
    return [line.split("\t") for line in done.stdout.decode().splitlines() if line]


class _RowCounter:
    """Counts the rows (one INSERT a line) and tables of a dump as it streams by."""

    def __init__(self):
        self.tables: dict[str, int] = {}
        self._head = b""

    def feed(self, data: bytes) -> None:
        lines = data.split(b"\n")
        for i, part in enumerate(lines):
            if i:
                self._line_ended()
            if len(self._head) < HEAD_BYTES:
                self._head += part[:HEAD_BYTES - len(self._head)]

    def _line_ended(self) -> None:
        for prefix, rows in ((INSERT, 1), (CREATE, 0)):
            if self._head.startswith(prefix):
                name = self._head[len(prefix):].split(b"`", 1)[0].decode()
                self.tables[name] = self.tables.get(name, 0) + rows
        self._head = b""

    def close(self) -> dict[str, int]:
        self._line_ended()
        return self.tables


def dump(settings, path: Path) -> tuple[dict[str, int], dict]:
    """``mariadb-dump --single-transaction`` of MYSQL_DB into ``path`` (gzip), streamed and
    hashed; ({table: rows}, manifest entry)."""
    counter = _RowCounter()
    out = HashingWriter(path)
    with defaults_file(settings) as cnf, tempfile.TemporaryFile() as errors:
        argv = [_program("mariadb-dump"), f"--defaults-extra-file={cnf}", *DUMP_OPTIONS,
                settings.mysql.db]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors)
        try:
            with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=GZIP_LEVEL,
                               mtime=0) as gz:
                while block := process.stdout.read(READ_SIZE):
                    counter.feed(block)
                    gz.write(block)
        finally:
            code = process.wait()
            out.close()
        if code != 0:
            errors.seek(0)
            raise _failure(argv[0], code, errors.read())
    return counter.close(), out.entry


def load(settings, path: Path, database: str) -> None:
    """Pipe the gzipped dump into ``mariadb`` connected to ``database``."""
    with defaults_file(settings) as cnf, tempfile.TemporaryFile() as errors:
        argv = [_program("mariadb"), f"--defaults-extra-file={cnf}",
                "--default-character-set=utf8mb4", database]
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=errors)
        try:
            with gzip.open(path, "rb") as dump_file:
                while block := dump_file.read(READ_SIZE):
                    process.stdin.write(block)
        except BrokenPipeError:
            pass  # the client stopped early: its exit status and message say why
        finally:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            code = process.wait()
        if code != 0:
            errors.seek(0)
            raise _failure(argv[0], code, errors.read())


def table_count(settings, database: str) -> int:
    """How many tables ``database`` holds (0 when it does not exist)."""
    rows = sql(settings, "SELECT COUNT(*) FROM information_schema.tables "
                         f"WHERE table_schema = {quote_string(database)}")
    return int(rows[0][0])


def row_counts(settings, database: str) -> dict[str, int]:
    """Rows of every base table of ``database``."""
    tables = [row[0] for row in sql(settings, "SHOW FULL TABLES WHERE Table_type = "
                                              "'BASE TABLE'", database)]
    if not tables:
        return {}
    query = " UNION ALL ".join(f"SELECT {quote_string(t)}, COUNT(*) FROM {quote_name(t)}"
                               for t in tables)
    return {name: int(rows) for name, rows in sql(settings, query, database)}


def create_database(settings, database: str) -> None:
    """CREATE DATABASE IF NOT EXISTS, in utf8mb4."""
    sql(settings, f"CREATE DATABASE IF NOT EXISTS {quote_name(database)} "
                  "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")


def drop_database(settings, database: str) -> None:
    """DROP DATABASE IF EXISTS."""
    sql(settings, f"DROP DATABASE IF EXISTS {quote_name(database)}")


def row_counts_if_exists(settings, database: str) -> dict[str, int]:
    """``row_counts``, or nothing when the database does not exist or has no table."""
    return row_counts(settings, database) if table_count(settings, database) else {}
