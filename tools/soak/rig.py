"""The soak's private servers and services, all under one run directory, all stopped by
``close()`` whatever happened before."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path

from tools import devstack, isolation, stackenv
from tools.processes import Process, RestartPolicy, Stack, free_port
from tools.servers import MariaDBServer, RabbitMQCluster


def _quietly(log: Callable[[str], None], what: str, call, *args) -> None:
    """Run a clean-up step; a failure is logged, and the next step runs all the same."""
    try:
        call(*args)
    except Exception as exc:  # noqa: BLE001 - every step of the clean-up must run
        log(f"clean-up: {what} failed: {exc!r}")


class Rig:
    """MariaDB, a RabbitMQ cluster, nx-27017, the SMTP sink and the services (``scale``
    replicas, restarted when they exit), private to ``directory``."""

    def __init__(self, directory: Path, scale: Mapping[str, int], overrides: Mapping[str, str],
                 log: Callable[[str], None], cluster_size: int = 3):
        self.dir = Path(directory)
        self.scale = dict(scale)
        self.overrides = dict(overrides)
        self.log = log
        self.cluster_size = cluster_size
        self.env: dict[str, str] = {}
        self.mariadb: MariaDBServer | None = None
        self.cluster: RabbitMQCluster | None = None
        self.mongodb: Process | None = None
        self.mailsink: Process | None = None
        self.services: Stack | None = None
        self.timings: dict[str, float] = {}
        self._exit = contextlib.ExitStack()

    @property
    def mail_dir(self) -> Path:
        """Where the SMTP sink stores every message."""
        return self.dir / "mail"

    @property
    def gateways(self) -> list[str]:
        """The URL of every gateway replica."""
        return [f"http://127.0.0.1:{p.port}" for p in self.services.replicas("gateway")]

    def _timed(self, name: str, call):
        started = time.monotonic()
        result = call()
        self.timings[name] = round(time.monotonic() - started, 1)
        self.log(f"{name} ready in {self.timings[name]}s")
        return result

    def start(self) -> Rig:
        """Start everything, in order; on failure stop what was started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        self.mariadb = MariaDBServer(self.dir / "mariadb")
        self._exit.callback(_quietly, self.log, "stop mariadb", self.mariadb.stop)
        self._timed("mariadb", self.mariadb.start)
        self.cluster = RabbitMQCluster(self.dir / "rabbitmq", size=self.cluster_size)
        self._exit.callback(_quietly, self.log, "stop rabbitmq", self.cluster.stop)
        self._timed("rabbitmq cluster", self.cluster.start)
        # The servers are the run's own and go with it: nothing to drop or delete after.
        rabbitmq_url = isolation.add_vhost("soak", self.cluster)
        mysql = isolation.create_mysql_database("soak", self.mariadb)
        self.env = stackenv.service_env(
            mysql=mysql, rabbitmq_url=rabbitmq_url,
            mongodb_uri=f"mongodb://127.0.0.1:{free_port()}", mongodb_db="soak",
            smtp_host="127.0.0.1", smtp_port=free_port(),
            PUBLIC_URL=f"http://127.0.0.1:{free_port(self.scale.get('gateway', 1))}",
            **self.overrides)
        self.mongodb = devstack.mongodb_process(self.env, self.dir)
        self._exit.callback(_quietly, self.log, "stop nx-27017", self._stop_mongodb)
        self._timed("nx-27017", lambda: self.mongodb.start().wait_ready(60))
        self.mailsink = devstack.mailsink_process(self.env, self.dir)
        self._exit.callback(_quietly, self.log, "stop mailsink", self.mailsink.terminate, 10)
        self._timed("mailsink", lambda: self.mailsink.start().wait_ready(30))
        self._timed("auth schema", lambda: devstack.init_db(self.env,
                                                             self.dir / "log" / "auth-cli.log"))
        self.services = devstack.build_stack(self.env, self.dir, with_mongodb=False,
                                             with_mailsink=False, scale=self.scale)
        self._exit.callback(_quietly, self.log, "stop services", self.services.stop)
        self._timed("services", lambda: self.services.start(timeout=120, together=True))
        self.services.supervise(RestartPolicy(), log=lambda line: self.log(f"supervisor: {line}"))

    def _stop_mongodb(self) -> None:
        if self.mongodb.alive:
            self.mongodb.send_signal(signal.SIGCONT)  # a pause in progress must not hold it
        self.mongodb.terminate(10)

    def sweep(self, **overrides: str) -> dict:
        """One `python -m ops sweep`, as the CronJob runs it; what it printed (or the error)."""
        try:
            result = devstack.ops_command(["sweep"], {**self.env, **overrides},
                                          self.dir / "log" / "sweep.log", timeout=120)
        except subprocess.TimeoutExpired:
            return {"error": "timed out"}
        if result.returncode != 0:
            return {"error": f"exit {result.returncode}: {result.stderr.strip()[-300:]}"}
        lines = result.stdout.strip().splitlines()
        return _json(lines[-1]) if lines else {}

    def dead_letters(self, queue: str) -> list[dict] | str:
        """`python -m ops dlq-list QUEUE`: the dead letters, or the error."""
        result = devstack.ops_command(["dlq-list", queue], self.env,
                                      self.dir / "log" / "dlq.log", timeout=120)
        if result.returncode != 0:
            return f"exit {result.returncode}: {result.stderr.strip()[-300:]}"
        return [_json(line) for line in result.stdout.splitlines() if line.strip()]

    def queues(self) -> list[dict] | str:
        """Every queue of the run's vhost with its messages (ready, unacknowledged), as
        `rabbitmqctl list_queues` on the cluster says; or the error."""
        first = urllib.parse.urlsplit(self.env["RABBITMQ_URL"].split(",")[0])
        vhost = urllib.parse.unquote(first.path[1:])
        try:
            out = self.cluster.ctl("list_queues", "-p", vhost, "name", "messages_ready",
                                   "messages_unacknowledged")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        rows = [line.split("\t") for line in out.splitlines()]
        return [{"name": r[0], "ready": int(r[1]), "unacked": int(r[2])}
                for r in rows if len(r) == 3 and r[1].isdigit()]

    def restarts(self) -> dict[str, int]:
        """How many times the supervisor restarted each service process."""
        return {name: p.restarts for name, p in self.services.processes.items()} \
            if self.services else {}

    def close(self) -> None:
        """Stop everything that was started, last first; never raises."""
        self._exit.close()


def _json(line: str):
    """A JSON line a command printed (what it was, when it is not JSON)."""
    try:
        return json.loads(line)
    except ValueError:
        return {"unparsed": line[:500]}
