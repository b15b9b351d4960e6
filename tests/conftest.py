"""Shared fixtures: real MariaDB, RabbitMQ, nx-27017, SMTP sink, test media and the whole stack.

Everything is isolated from `make run`: the MariaDB server and RabbitMQ node are the test run's
own (tools/servers.py), on free ports like every other process, with their own directories.
Helpers for tests live in tools/: `tools.media.ffprobe_duration`, `tools.media.ffprobe_codec`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pika
import pytest
import requests

from common import topology
from tools import devstack, isolation, stackenv
from tools.isolation import MariaDB, RabbitMQ
from tools.mailsink import read_messages, verification_link
from tools.media import ffprobe_codec, ffprobe_duration, make_media
from tools.processes import Process, Stack, free_port
from tools.prometheus import PrometheusApi, prometheus_process
from tools.servers import MariaDBServer, RabbitMQCluster, RabbitMQNode

__all__ = ["ffprobe_codec", "ffprobe_duration"]



def _token() -> str:
    return secrets.token_hex(4)


def mysql_database(server: MariaDB):
    """A fresh database with its own user on ``server`` (context manager); yields auth's
    MYSQL_* settings."""
    return isolation.mysql_database("mp3test", server)


def rabbitmq_vhost(node: RabbitMQ):
    """A fresh vhost of ``node`` open to guest (context manager); yields its amqp URL."""
    return isolation.rabbitmq_vhost("mp3test", node)


class ServiceDirs:
    """Private directories for this session's processes, outside pytest's tmp rotation."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="mp3converter-tests-"))

    def new(self, name: str) -> Path:
        """A new empty directory."""
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))


class MailSink:
    """The running SMTP sink and the messages it stored."""

    def __init__(self, process: Process, directory: Path, host: str, port: int):
        self.process = process
        self.dir = directory
        self.host = host
        self.port = port

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        """Stored messages, oldest first; only those addressed to `to` when given."""
        found = read_messages(self.dir)
        if to is None:
            return found
        to = to.lower()
        return [m for m in found if to in f"{m['X-Envelope-To']},{m['To']}".lower()]

    def verification_link(self, to: str, timeout: float = 30.0, consume: bool = False) -> str:
        """The link in the newest verification email to `to`; `consume` deletes that email,
        as a person who read it would, so tests counting job emails see only those."""
        return verification_link(self.dir, to, timeout, consume)

    def wait_for(
        self, count: int = 1, timeout: float = 30.0, to: str | None = None
    ) -> list[EmailMessage]:
        """Wait until at least `count` messages (to `to`) are stored; fail with what arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                subjects = [m["Subject"] for m in found]
                raise AssertionError(
                    f"expected {count} message(s) to {to or 'anyone'} within {timeout}s, "
                    f"got {len(found)}: {subjects}"
                )
            time.sleep(0.2)


class RunningStack:
    """The four services running as real processes, plus the servers they use."""

    def __init__(
        self,
        services: Stack,
        env: dict[str, str],
        servers: dict[str, Process],
        mailsink: MailSink | None = None,
    ):
        self.services = services
        self.env = env
        self.mailsink = mailsink
        self.processes: dict[str, Process] = {**servers, **services.processes}
        self.gateway_url = env["PUBLIC_URL"]
        self.auth_url = env["AUTH_URL"]

    @property
    def logs(self) -> dict[str, Path]:
        """Log file of every process by name."""
        return {name: p.log_path for name, p in self.processes.items()}

    @property
    def metrics_urls(self) -> dict[str, str]:
        """Where each service serves its Prometheus metrics (its own free port), by name."""
        return devstack.metrics_urls(self.services)

    def log_tails(self, lines: int = 40) -> str:
        """The last log lines of every process."""
        return "\n".join(
            f"===== {name} ({p.log_path}) =====\n{p.log_tail(lines)}"
            for name, p in self.processes.items()
        )

    def register(self, email: str, password: str, verified: bool = True) -> requests.Response:
        """POST /register on the gateway (asserts 201); then confirm the address unless told not."""
        resp = requests.post(
            f"{self.gateway_url}/register", json={"email": email, "password": password}, timeout=10
        )
        assert resp.status_code == 201, f"register {email}: {resp.status_code} {resp.text}"
        if verified:
            self.verify(email)
        return resp

    def verify(self, email: str) -> None:
        """Follow the link of the verification email, as its reader does (the email is used up)."""
        assert self.mailsink is not None, "this stack has no mail sink"
        link = self.mailsink.verification_link(email, consume=True)
        resp = requests.get(link, timeout=10)
        assert resp.status_code == 200, f"verify {email}: {resp.status_code} {resp.text}"

    def login(self, email: str, password: str) -> str:
        """POST /login on the gateway with HTTP Basic; returns the JWT."""
        resp = requests.post(f"{self.gateway_url}/login", auth=(email, password), timeout=10)
        assert resp.status_code == 200, f"login {email}: {resp.status_code} {resp.text}"
        return resp.text.strip()

    @staticmethod
    def account_id(jwt: str) -> str:
        """The account id a login token names (its ``sub``): what jobs' owner carries."""
        payload = jwt.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]

    def user(
        self, password: str = "correct horse battery", verified: bool = True
    ) -> tuple[str, str]:
        """Register a new unique user, who confirmed their address unless told not; (email, jwt)."""
        email = f"user-{_token()}{_token()}@example.com"
        self.register(email, password, verified=verified)
        return email, self.login(email, password)


def _start_services(
    env: dict[str, str],
    var_dir: Path,
    servers: dict[str, Process],
    services=devstack.SERVICES,
    mailsink: MailSink | None = None,
    scale: dict[str, int] | None = None,
) -> RunningStack:
    """init-db, then start the services; on failure print every log tail and re-raise."""
    stack = devstack.build_stack(
        env, var_dir, with_mongodb=False, with_mailsink=False, services=services, scale=scale
    )
    running = RunningStack(stack, env, servers, mailsink)
    try:
        devstack.init_db(env, var_dir / "log" / "auth-cli.log")
        stack.start(timeout=60, together=True)
    except BaseException:
        print(running.log_tails(80))
        raise
    return running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach service log tails to the report of a failed test that used a running stack."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, RunningStack):
                report.sections.append(("service logs", value.log_tails()))
    return report


@pytest.fixture(scope="session")
def service_dirs(request) -> Iterator[ServiceDirs]:
    """Where processes keep data and logs; removed at the end unless a test failed."""
    dirs = ServiceDirs()
    yield dirs
    if request.session.testsfailed:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_line(f"service data and logs kept in {dirs.root}")
    else:
        shutil.rmtree(dirs.root, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_server(service_dirs) -> Iterator[MariaDBServer]:
    """The test run's MariaDB server: a free port, its own data directory."""
    with MariaDBServer(service_dirs.new("mariadb")) as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq_node(service_dirs) -> Iterator[RabbitMQNode]:
    """The test run's RabbitMQ node: free ports, its own data directory, queue metrics at
    .prometheus_url."""
    with RabbitMQNode(service_dirs.new("rabbitmq")) as node:
        yield node


@pytest.fixture(scope="session")
def rabbitmq_cluster(service_dirs) -> Iterator[RabbitMQCluster]:
    """Three RabbitMQ nodes clustered on loopback (tools.servers.RabbitMQCluster; a vhost:
    ``rabbitmq_vhost(cluster)``, its URL lists every node). A test may stop, kill and start
    any node: after each test that used it, every node runs again (restored below)."""
    with RabbitMQCluster(service_dirs.new("rabbitmq-cluster")) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def _rabbitmq_cluster_restored(request) -> Iterator[None]:
    """After a test that used rabbitmq_cluster: every node of it started again and back in the
    cluster, so the next test finds three."""
    used = "rabbitmq_cluster" in request.fixturenames
    cluster = request.getfixturevalue("rabbitmq_cluster") if used else None
    yield
    if cluster is not None:
        cluster.restore()


@pytest.fixture
def fresh_mariadb_server(service_dirs) -> Iterator[MariaDBServer]:
    """A MariaDB server for one test alone, which may stop and start it."""
    with MariaDBServer(service_dirs.new("mariadb"), name="mariadb-fresh") as server:
        yield server


@pytest.fixture
def fresh_rabbitmq_node(service_dirs) -> Iterator[RabbitMQNode]:
    """A RabbitMQ node for one test alone, which may stop and start it."""
    with RabbitMQNode(service_dirs.new("rabbitmq")) as node:
        yield node


@pytest.fixture(scope="session")
def mysql_db(mariadb_server) -> Iterator[dict[str, str]]:
    """A fresh MariaDB database and user; MYSQL_* settings for auth."""
    with mysql_database(mariadb_server) as settings:
        yield settings


@pytest.fixture(scope="session")
def rabbitmq_url(rabbitmq_node) -> Iterator[str]:
    """amqp URL of a fresh RabbitMQ vhost."""
    with rabbitmq_vhost(rabbitmq_node) as url:
        yield url


@pytest.fixture(scope="session")
def mongodb_server(service_dirs) -> Iterator[Process]:
    """nx-27017 on a free port with its own data directory."""
    var_dir = service_dirs.new("mongodb")
    env = {"MONGODB_URI": f"mongodb://127.0.0.1:{free_port()}"}
    process = devstack.mongodb_process(env, var_dir)
    process.start().wait_ready(30)
    yield process
    process.terminate(10)


@pytest.fixture(scope="session")
def mongodb_uri(mongodb_server) -> str:
    """mongodb:// URI of the test nx-27017 server."""
    return mongodb_server.env["MONGODB_URI"]


@pytest.fixture(scope="session")
def mailsink(service_dirs) -> Iterator[MailSink]:
    """The SMTP sink as a real process on a free port."""
    var_dir = service_dirs.new("mailsink")
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port())}
    process = devstack.mailsink_process(env, var_dir)
    process.start().wait_ready(30)
    yield MailSink(process, var_dir / "mail", env["SMTP_HOST"], int(env["SMTP_PORT"]))
    process.terminate(10)


@pytest.fixture
def prometheus(service_dirs) -> Iterator[Callable[[dict[str, str]], PrometheusApi]]:
    """prometheus(targets, rules=None) starts a real Prometheus (own port and data directory)
    scraping every second the metrics URLs of ``targets`` (a stack's ``metrics_urls``) and
    evaluating ``rules`` (a rules file's text); stopped after."""
    started: list[Process] = []

    def start(targets: dict[str, str], rules: str | None = None) -> PrometheusApi:
        process = prometheus_process(targets, service_dirs.new("prometheus"), rules=rules)
        started.append(process)
        process.start().wait_ready(30)
        return PrometheusApi(process)

    try:
        yield start
    finally:
        for process in started:
            process.terminate(10)


@pytest.fixture(scope="session")
def service_env(mysql_db, rabbitmq_url, mongodb_uri, mailsink) -> dict[str, str]:
    """Environment for every service (README: Configuration); copy it before changing it."""
    return stackenv.service_env(mysql=mysql_db, rabbitmq_url=rabbitmq_url,
                                mongodb_uri=mongodb_uri, mongodb_db=f"mp3test_{_token()}",
                                smtp_host=mailsink.host, smtp_port=mailsink.port)


@pytest.fixture(scope="session")
def stack(service_env, mongodb_server, mailsink, service_dirs) -> Iterator[RunningStack]:
    """auth, gateway, converter and notification running as real processes."""
    var_dir = service_dirs.new("stack")
    servers = {"mongodb": mongodb_server, "mailsink": mailsink.process}
    running = _start_services(dict(service_env), var_dir, servers, mailsink=mailsink)
    yield running
    running.services.stop()


@pytest.fixture
def stack_factory(
    service_env, mongodb_server, mailsink, service_dirs, rabbitmq_node
) -> Iterator[Callable[..., RunningStack]]:
    """Start a separate stack (own vhost unless RABBITMQ_URL is given, MongoDB database and
    ports) with env overrides; ``scale`` runs replicas (devstack.build_stack: ``gateway-2``
    on PUBLIC_URL's port + 1...)."""
    started: list[RunningStack] = []
    with contextlib.ExitStack() as cleanup:

        def start(services=devstack.SERVICES, scale: dict[str, int] | None = None,
                  **overrides: str) -> RunningStack:
            env = dict(service_env)
            if "RABBITMQ_URL" not in overrides:
                env["RABBITMQ_URL"] = cleanup.enter_context(rabbitmq_vhost(rabbitmq_node))
            env.update(
                MONGODB_DB=f"mp3test_{_token()}",
                AUTH_URL=f"http://127.0.0.1:{free_port()}",
                PUBLIC_URL=f"http://127.0.0.1:{free_port((scale or {}).get('gateway', 1))}",
            )
            env.update(overrides)
            var_dir = service_dirs.new("stack")
            servers = {"mongodb": mongodb_server, "mailsink": mailsink.process}
            running = _start_services(env, var_dir, servers, services, mailsink, scale)
            started.append(running)
            return running

        try:
            yield start
        finally:
            for running in started:
                running.services.stop()


@pytest.fixture(scope="session")
def media_dir(service_dirs) -> Path:
    """Where generated test media are cached for the session."""
    return service_dirs.new("media")


@pytest.fixture(scope="session")
def media(media_dir) -> Callable[[str], Path]:
    """media(kind) -> path of a small generated test file (see tools.media.KINDS, and "text")."""
    return lambda kind: make_media(kind, media_dir)


@pytest.fixture(scope="module")
def module_vhost(rabbitmq_node):
    """amqp URL of a RabbitMQ vhost shared by one test module."""
    with rabbitmq_vhost(rabbitmq_node) as url:
        yield url


@pytest.fixture
def vhost(module_vhost):
    """The module's vhost with the topology (3 attempts) declared and every queue empty."""
    conn = pika.BlockingConnection(pika.URLParameters(module_vhost))
    try:
        channel = conn.channel()
        topology.declare(channel, 3)
        for queue in topology.WORK_QUEUES:
            channel.queue_purge(queue)
            channel.queue_purge(topology.dlq(queue))
    finally:
        conn.close()
    return module_vhost
