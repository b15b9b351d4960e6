"""Throw-away MariaDB databases and RabbitMQ vhosts, so tests and benchmarks share nothing.

Each takes the server to use: the machine's (`make run`, the benchmarks) by default, or one of
the private servers of tools/servers.py (the tests).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence

import MySQLdb


class MariaDB:
    """Where a MariaDB server listens, and its root account."""

    def __init__(self, host: str = "127.0.0.1", port: int = 3306, user: str = "root",
                 password: str = ""):
        self.host, self.port, self.user, self.password = host, port, user, password

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}:{self.port}>"

    def connect(self, **options) -> MySQLdb.Connection:
        """A root connection."""
        return MySQLdb.connect(host=self.host, port=self.port, user=self.user,
                               passwd=self.password, **options)


class RabbitMQ:
    """A RabbitMQ node: its AMQP listener (guest/guest) and the rabbitmqctl that reaches it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5672,
                 ctl_argv: Sequence[str] = ("rabbitmqctl",),
                 ctl_env: Mapping[str, str] | None = None):
        self.host, self.port = host, port
        self.ctl_argv = list(ctl_argv)
        self.ctl_env = dict(ctl_env) if ctl_env is not None else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}:{self.port}>"

    def amqp_url(self, vhost: str = "/", user: str = "guest", password: str = "guest") -> str:
        """amqp URL of a vhost of this node."""
        return (f"amqp://{user}:{password}@{self.host}:{self.port}/"
                f"{urllib.parse.quote(vhost, safe='')}")

    def ctl(self, *args: str, attempts: int = 4, timeout: float = 60) -> str:
        """Run rabbitmqctl against this node, retrying: it fails now and then while the broker
        is busy; its output."""
        env = None if self.ctl_env is None else {**os.environ, **self.ctl_env}
        for attempt in range(attempts):
            done = subprocess.run([*self.ctl_argv, "-q", *args], capture_output=True, text=True,
                                  timeout=timeout, env=env)
            if done.returncode == 0:
                return done.stdout
            if attempt + 1 < attempts:
                time.sleep(1 + attempt)
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: exit {done.returncode}: "
                           f"{(done.stderr or done.stdout).strip()[-300:]}")


MACHINE_MARIADB = MariaDB()
MACHINE_RABBITMQ = RabbitMQ()


def unique_name(prefix: str) -> str:
    """``prefix`` and 8 random hex digits."""
    return f"{prefix}_{secrets.token_hex(4)}"


_MYSQL_HOSTS = ("localhost", "127.0.0.1")


def create_mysql_database(prefix: str, server: MariaDB = MACHINE_MARIADB) -> dict[str, str]:
    """A fresh database with its own user on ``server``, kept: auth's MYSQL_* settings."""
    name, password = unique_name(prefix), secrets.token_urlsafe(16)
    with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        for host in _MYSQL_HOSTS:
            cur.execute(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{name}'@'{host}'")
    return {"MYSQL_HOST": server.host, "MYSQL_PORT": str(server.port),
            "MYSQL_USER": name, "MYSQL_PASSWORD": password, "MYSQL_DB": name}


@contextlib.contextmanager
def mysql_database(prefix: str, server: MariaDB = MACHINE_MARIADB) -> Iterator[dict[str, str]]:
    """A fresh database with its own user on ``server``; yields auth's MYSQL_* settings, drops
    both after."""
    settings = create_mysql_database(prefix, server)
    name = settings["MYSQL_DB"]
    try:
        yield settings
    finally:
        with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            for host in _MYSQL_HOSTS:
                cur.execute(f"DROP USER IF EXISTS '{name}'@'{host}'")


def rabbitmqctl(*args: str, attempts: int = 4, broker: RabbitMQ = MACHINE_RABBITMQ) -> str:
    """Run rabbitmqctl against ``broker``, retrying while it is busy; its output."""
    return broker.ctl(*args, attempts=attempts)


def add_vhost(prefix: str, broker: RabbitMQ = MACHINE_RABBITMQ) -> str:
    """A fresh vhost of ``broker`` open to guest, kept: its amqp URL."""
    vhost = unique_name(prefix)
    broker.ctl("add_vhost", vhost)
    try:
        broker.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except BaseException:
        broker.ctl("delete_vhost", vhost)
        raise
    return broker.amqp_url(vhost)


@contextlib.contextmanager
def rabbitmq_vhost(prefix: str, broker: RabbitMQ = MACHINE_RABBITMQ) -> Iterator[str]:
    """A fresh vhost of ``broker`` open to guest; yields its amqp URL, deletes it after."""
    url = add_vhost(prefix, broker)
    try:
        yield url
    finally:
        first = urllib.parse.urlsplit(url.split(",")[0])
        broker.ctl("delete_vhost", urllib.parse.unquote(first.path[1:]))


def rabbitmq_connections(url: str, broker: RabbitMQ = MACHINE_RABBITMQ) -> list[str]:
    """The broker's client connections to the vhost of the amqp ``url`` (or of the first of
    several, comma-separated: the nodes of a cluster), by name (the client's address and port,
    so a connection that was dropped and reopened has another name)."""
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(url.split(",")[0].strip()).path[1:])
    rows = (line.split("\t") for line in broker.ctl("list_connections", "vhost", "name")
            .splitlines())
    return sorted(row[1] for row in rows if len(row) == 2 and row[0] == vhost)
