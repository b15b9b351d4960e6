"""The real servers and services a benchmark needs, isolated from `make run` and the tests."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import MySQLdb

from tools import devstack
from tools.processes import ROOT, Process, Stack, free_port

MYSQL_ROOT = {"host": "127.0.0.1", "port": 3306, "user": "root", "passwd": ""}
RABBITMQ = "127.0.0.1:5672"
BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def _name() -> str:
    return f"mp3bench_{secrets.token_hex(4)}"


@contextlib.contextmanager
def mysql_database() -> Iterator[dict[str, str]]:
    """A fresh MariaDB database and user; yields auth's MYSQL_* settings."""
    name, password, hosts = _name(), secrets.token_urlsafe(16), ("localhost", "127.0.0.1")
    with contextlib.closing(MySQLdb.connect(**MYSQL_ROOT)) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        for host in hosts:
            cur.execute(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{name}'@'{host}'")
    try:
        yield {"MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": "3306", "MYSQL_USER": name,
               "MYSQL_PASSWORD": password, "MYSQL_DB": name}
    finally:
        with contextlib.closing(MySQLdb.connect(**MYSQL_ROOT)) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            for host in hosts:
                cur.execute(f"DROP USER IF EXISTS '{name}'@'{host}'")


def _rabbitmqctl(*args: str, attempts: int = 4) -> None:
    """Run rabbitmqctl, retrying: it fails now and then while the broker is busy."""
    for attempt in range(attempts):
        done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                              timeout=60)
        if done.returncode == 0:
            return
        time.sleep(1 + attempt)
    raise RuntimeError(f"rabbitmqctl {' '.join(args)}: exit {done.returncode}: "
                       f"{(done.stderr or done.stdout).strip()[-300:]}")


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A fresh RabbitMQ vhost open to guest; yields its amqp URL."""
    vhost = _name()
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBITMQ}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


class BenchStack:
    """nx-27017, the mail sink, a MariaDB database and services started on demand."""

    def __init__(self, var_dir: Path):
        self.var_dir = Path(var_dir)
        self._exit = contextlib.ExitStack()
        self.env: dict[str, str] = {}
        self.mail_dir = self.var_dir / "mailsink" / "mail"
        self.mongodb: Process | None = None

    def __enter__(self) -> BenchStack:
        try:
            self._start_servers()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._exit.close()

    def _start_servers(self) -> None:
        mongo_uri = f"mongodb://127.0.0.1:{free_port()}"
        smtp_port = str(free_port())
        self.mongodb = self._keep(
            devstack.mongodb_process({"MONGODB_URI": mongo_uri}, self.var_dir / "mongodb"))
        self._keep(devstack.mailsink_process(
            {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_port}, self.var_dir / "mailsink"))
        env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
        env.update(
            PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1", LOG_LEVEL="INFO",
            MONGODB_URI=mongo_uri, MONGODB_DB="mp3bench", MAX_DELIVERY_ATTEMPTS="3",
            RETRY_BASE_SECONDS="1", RETRY_MAX_SECONDS="5", HOST="127.0.0.1",
            WEB_WORKERS="2", WEB_THREADS="8", JWT_SECRET=secrets.token_urlsafe(32),
            DOWNLOAD_URL_SECRET=secrets.token_urlsafe(32), SHUTDOWN_GRACE_SECONDS="10",
            SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_port, SMTP_FROM="mp3converter@localhost",
            **self._exit.enter_context(mysql_database()))
        self.env = env
        devstack.init_db(env, self.var_dir / "log" / "auth-init.log")

    def _keep(self, process: Process) -> Process:
        process.start().wait_ready(60)
        self._exit.callback(process.terminate, 10)
        return process

    def vhost(self) -> str:
        """A fresh vhost's amqp URL, deleted when the stack stops."""
        return self._exit.enter_context(rabbitmq_vhost())

    def services(self, names: list[str], rabbitmq_url: str, tag: str, **overrides: str) -> Stack:
        """Start these services (auth, gateway, converter, notification) on one vhost."""
        env = dict(self.env, RABBITMQ_URL=rabbitmq_url,
                   AUTH_URL=f"http://127.0.0.1:{free_port()}",
                   PUBLIC_URL=f"http://127.0.0.1:{free_port()}", **overrides)
        stack = devstack.build_stack(env, self.var_dir / tag, with_mongodb=False,
                                     with_mailsink=False, services=names)
        stack.env = env
        self._exit.callback(stack.stop)
        stack.start(timeout=60)
        return stack

    def converters(self, count: int, rabbitmq_url: str, tag: str) -> Stack:
        """``count`` converter processes sharing the `video` queue of one vhost."""
        env = dict(self.env, RABBITMQ_URL=rabbitmq_url)
        processes = [devstack.consumer_process("converter", env, self.var_dir / tag / str(i))
                     for i in range(count)]
        for i, process in enumerate(processes):
            process.name = f"converter-{i}"
        stack = Stack(processes)
        stack.start(timeout=60)
        return stack
