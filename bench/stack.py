"""The real servers and services a benchmark needs, isolated from `make run` and the tests."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from bench.driver import CONVERTER_ENV
from tools import devstack, isolation
from tools.processes import ROOT, Process, Stack, free_port

BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


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
            # The services run this checkout's code, whichever one the venv's install names.
            PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1", LOG_LEVEL="INFO",
            MONGODB_URI=mongo_uri, MONGODB_DB="mp3bench", MAX_DELIVERY_ATTEMPTS="3",
            RETRY_BASE_SECONDS="1", RETRY_MAX_SECONDS="5", HOST="127.0.0.1",
            WEB_WORKERS="2", WEB_THREADS="8", JWT_SECRET=secrets.token_urlsafe(32),
            DOWNLOAD_URL_SECRET=secrets.token_urlsafe(32), SHUTDOWN_GRACE_SECONDS="10",
            SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_port, SMTP_FROM="mp3converter@localhost",
            # The benchmark measures speed, not fair use: one user uploads again and again.
            LOGIN_RATE_LIMIT_PER_ACCOUNT="100000 per minute",
            LOGIN_RATE_LIMIT_PER_ADDRESS="100000 per minute",
            REGISTER_RATE_LIMIT_PER_ADDRESS="100000 per minute",
            UPLOAD_RATE_LIMIT_PER_USER="100000 per minute",
            USER_MAX_ACTIVE_JOBS="100000", USER_STORAGE_QUOTA_BYTES=str(1 << 50),
            **self._exit.enter_context(isolation.mysql_database("mp3bench")))
        self.env = env
        devstack.init_db(env, self.var_dir / "log" / "auth-init.log")

    def _keep(self, process: Process) -> Process:
        process.start().wait_ready(60)
        self._exit.callback(process.terminate, 10)
        return process

    def vhost(self) -> str:
        """A fresh vhost's amqp URL, deleted when the stack stops."""
        return self._exit.enter_context(isolation.rabbitmq_vhost("mp3bench"))

    def services(self, names: list[str], rabbitmq_url: str, tag: str, **overrides: str) -> Stack:
        """Start these services (auth, gateway, converter, notification) on one vhost;
        ``overrides`` win (e.g. the AUTH_URL of an auth started earlier)."""
        env = {**self.env, "RABBITMQ_URL": rabbitmq_url,
               "AUTH_URL": f"http://127.0.0.1:{free_port()}",
               "PUBLIC_URL": f"http://127.0.0.1:{free_port()}", **overrides}
        stack = devstack.build_stack(env, self.var_dir / tag, with_mongodb=False,
                                     with_mailsink=False, services=names)
        stack.env = env
        self._exit.callback(stack.stop)
        stack.start(timeout=60)
        return stack

    def converters(self, count: int, rabbitmq_url: str, tag: str) -> Stack:
        """``count`` converter processes sharing the `video` queue of one vhost, fed by the
        benchmark (bench.driver: one stored video for many jobs of one owner)."""
        env = dict(self.env, RABBITMQ_URL=rabbitmq_url, **CONVERTER_ENV)
        processes = [devstack.consumer_process("converter", env, self.var_dir / tag / str(i))
                     for i in range(count)]
        for i, process in enumerate(processes):
            process.name = f"converter-{i}"
        stack = Stack(processes)
        stack.start(timeout=60, together=True)
        return stack
