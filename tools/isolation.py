"""Throw-away MariaDB databases and RabbitMQ vhosts, so tests and benchmarks share nothing."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
import urllib.parse
from collections.abc import Iterator

import MySQLdb

MYSQL_ROOT = {"host": "127.0.0.1", "port": 3306, "user": "root", "passwd": ""}
RABBITMQ_HOST = "127.0.0.1:5672"


def unique_name(prefix: str) -> str:
    """``prefix`` and 8 random hex digits."""
    return f"{prefix}_{secrets.token_hex(4)}"


@contextlib.contextmanager
def mysql_database(prefix: str) -> Iterator[dict[str, str]]:
    """A fresh database with its own user; yields auth's MYSQL_* settings, drops both after."""
    name, password = unique_name(prefix), secrets.token_urlsafe(16)
    hosts = ("localhost", "127.0.0.1")
    with contextlib.closing(MySQLdb.connect(**MYSQL_ROOT)) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        for host in hosts:
            cur.execute(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{name}'@'{host}'")
    try:
        yield {"MYSQL_HOST": MYSQL_ROOT["host"], "MYSQL_PORT": str(MYSQL_ROOT["port"]),
               "MYSQL_USER": name, "MYSQL_PASSWORD": password, "MYSQL_DB": name}
    finally:
        with contextlib.closing(MySQLdb.connect(**MYSQL_ROOT)) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            for host in hosts:
                cur.execute(f"DROP USER IF EXISTS '{name}'@'{host}'")


def rabbitmqctl(*args: str, attempts: int = 4) -> str:
    """Run rabbitmqctl, retrying: it fails now and then while the broker is busy; its output."""
    for attempt in range(attempts):
        done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                              timeout=60)
        if done.returncode == 0:
            return done.stdout
        time.sleep(1 + attempt)
    raise RuntimeError(f"rabbitmqctl {' '.join(args)}: exit {done.returncode}: "
                       f"{(done.stderr or done.stdout).strip()[-300:]}")


@contextlib.contextmanager
def rabbitmq_vhost(prefix: str) -> Iterator[str]:
    """A fresh RabbitMQ vhost open to guest; yields its amqp URL, deletes it after."""
    vhost = unique_name(prefix)
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBITMQ_HOST}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


def rabbitmq_connections(url: str) -> list[str]:
    """The broker's client connections to the vhost of the amqp ``url``, by name (the client's
    address and port, so a connection that was dropped and reopened has another name)."""
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(url).path[1:])
    rows = (line.split("\t") for line in rabbitmqctl("list_connections", "vhost", "name")
            .splitlines())
    return sorted(row[1] for row in rows if len(row) == 2 and row[0] == vhost)
