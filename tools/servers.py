"""Private MariaDB and RabbitMQ servers: free ports, their own data directory, loopback only.

The tests run on these instead of the machine's servers (which `make run` and the benchmarks
use), so a test may stop one without anyone else noticing. Each server runs as a
tools.processes.Process, in its own process group, and is stopped by `stop()` (or leaving the
`with` block); if the Python process dies first, the server gets SIGTERM (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from tools import isolation
from tools.processes import Process, ProcessFailed, free_port, port_open

SBIN_PATH = os.pathsep.join(("/usr/local/sbin", "/usr/sbin", "/sbin"))
# Debian's /usr/sbin/rabbitmq* switch to the rabbitmq user (and its cookie); these do not.
RABBITMQ_LIB_BIN = Path("/usr/lib/rabbitmq/bin")
BASE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")


def _program(*names: str) -> str:
    """The first of ``names`` found on PATH or in the sbin directories."""
    path = f"{os.environ.get('PATH', '')}{os.pathsep}{SBIN_PATH}"
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return found
    raise ProcessFailed(f"none of {', '.join(names)} is installed")


def _rabbitmq_program(name: str) -> str:
    """A RabbitMQ script that runs as the current user."""
    own = RABBITMQ_LIB_BIN / name
    return str(own) if own.exists() else _program(name)


def _free_ports(count: int) -> list[int]:
    """``count`` different free ports."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _base_env() -> dict[str, str]:
    return {key: os.environ[key] for key in BASE_ENV_KEYS if key in os.environ}


class MariaDBServer(isolation.MariaDB):
    """mariadbd on a free port of 127.0.0.1 with its own data directory; root without a
    password. The data directory is created on the first start and kept across restarts."""

    def __init__(self, directory: Path, name: str = "mariadb"):
        super().__init__("127.0.0.1", free_port())
        self.dir = Path(directory)
        self.data = self.dir / "data"
        self.socket = self.dir / "mysqld.sock"
        self.log_path = self.dir / "mariadb.log"
        self.start_seconds: float | None = None  # the last start, until it accepted connections
        user = pwd.getpwuid(os.getuid()).pw_name
        self._common = ["--no-defaults", f"--datadir={self.data}", f"--user={user}",
                        "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"]
        argv = [_program("mariadbd", "mysqld"), *self._common, f"--socket={self.socket}",
                f"--port={self.port}", "--bind-address=127.0.0.1",
                f"--pid-file={self.dir / 'mariadb.pid'}", f"--tmpdir={self.dir}",
                "--skip-name-resolve", "--skip-log-bin"]
        self.process = Process(name, argv, _base_env(), self.log_path, ready=self._accepts,
                               port=self.port, stop_timeout=30, cwd=self.dir)

    def _accepts(self) -> bool:
        try:
            self.connect(connect_timeout=2).close()
            return True
        except Exception:  # noqa: BLE001 - MySQLdb raises several kinds while it starts
            return False

    def _install(self) -> None:
        """mariadb-install-db into the data directory: system tables, root without password."""
        argv = [_program("mariadb-install-db", "mysql_install_db"), *self._common,
                "--auth-root-authentication-method=normal", "--skip-test-db"]
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "install.log", "wb") as log:
            done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                  env=_base_env(), timeout=120)
        if done.returncode != 0:
            raise ProcessFailed(f"{' '.join(argv)}: exit {done.returncode}, log "
                                f"{self.dir / 'install.log'}")

    @property
    def alive(self) -> bool:
        """True while mariadbd runs."""
        return self.process.alive

    def start(self, timeout: float = 60) -> MariaDBServer:
        """Start (installing the data directory first if new) and wait until root can connect."""
        started = time.monotonic()
        if not (self.data / "mysql").is_dir():
            self._install()
        self.process.start().wait_ready(timeout)
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """SIGTERM (a clean shutdown) and wait for the exit; SIGKILL after 30 s."""
        if self.alive:
            self.process.terminate()

    def __enter__(self) -> MariaDBServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RabbitMQNode(isolation.RabbitMQ):
    """A RabbitMQ node of its own (<name>@localhost) on free ports of 127.0.0.1: AMQP (guest,
    from loopback only), Erlang distribution, and rabbitmq_prometheus with per-queue metrics.
    Its data, logs, config and Erlang cookie live in ``directory`` and survive restarts."""

    def __init__(self, directory: Path, name: str | None = None):
        self.dir = Path(directory)
        self.nodename = f"{name or isolation.unique_name('mp3test')}@localhost"
        amqp, self.dist_port, self.prometheus_port = _free_ports(3)
        self.prometheus_url = f"http://127.0.0.1:{self.prometheus_port}/metrics"
        self.start_seconds: float | None = None  # the last start, until AMQP and metrics answer
        self._started_at = 0.0
        # A node to join at the first boot (a node that has data keeps its own cluster).
        self.seed: str | None = None
        self.log_path = self.dir / "rabbitmq.log"
        env = {
            **_base_env(),
            "HOME": str(self.dir),  # the Erlang cookie of this node and its rabbitmqctl
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(amqp),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",  # should this node be the one to start epmd
        }
        super().__init__("127.0.0.1", amqp,
                         ctl_argv=(_rabbitmq_program("rabbitmqctl"), "-n", self.nodename),
                         ctl_env=env)
        self.process = Process(f"rabbitmq-{self.nodename.split('@')[0]}",
                               [_rabbitmq_program("rabbitmq-server")], env, self.log_path,
                               ready=self._listening, port=amqp, stop_timeout=30, cwd=self.dir)

    def _listening(self) -> bool:
        return port_open("127.0.0.1", self.port) and port_open("127.0.0.1", self.prometheus_port)

    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"
            "prometheus.tcp.ip = 127.0.0.1\n"
            f"prometheus.tcp.port = {self.prometheus_port}\n"
            "prometheus.return_per_object_metrics = true\n"
            + (f"cluster_formation.peer_discovery_backend = classic_config\n"
               f"cluster_formation.classic_config.nodes.1 = {self.seed}\n"
               if self.seed else "")
        )
        (self.dir / "enabled_plugins").write_text("[rabbitmq_prometheus].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        cookie = self.dir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)

    @property
    def alive(self) -> bool:
        """True while the node's processes run."""
        return self.process.alive

    def start(self, timeout: float = 120) -> RabbitMQNode:
        """Start the node and wait until its AMQP and metrics ports accept connections."""
        return self.launch().wait_started(timeout)

    def launch(self) -> RabbitMQNode:
        """Start the node's processes without waiting for it (``wait_started``): nodes of a
        cluster boot side by side. Call it from a thread that outlives the node."""
        self._started_at = time.monotonic()
        self._write_config()
        self.process.start()
        return self

    def wait_started(self, timeout: float = 120) -> RabbitMQNode:
        """Wait until the launched node's AMQP and metrics ports accept connections."""
        self.process.wait_ready(timeout)
        self.start_seconds = time.monotonic() - self._started_at
        return self

    def stop(self) -> None:
        """`rabbitmqctl stop` (a clean shutdown), then wait; SIGTERM, and SIGKILL to the
        process group, if it is still there."""
        if not self.alive:
            return
        try:
            self.ctl("stop", attempts=1, timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        if self.process.wait(30) is None:
            self.process.terminate()
        else:
            self.process.reap(0)  # whatever of the group is left

    def __enter__(self) -> RabbitMQNode:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RabbitMQCluster:
    """``size`` RabbitMQNodes (<prefix>_1@localhost, <prefix>_2@localhost...) clustered on
    loopback with one Erlang cookie, each in a directory of its own under ``directory``.

    It stands where a RabbitMQNode does for tools.isolation (``ctl``, ``amqp_url``): a vhost
    made through it exists on every node, and its URL lists every node, comma-separated, as
    RABBITMQ_URL may. Any node may be stopped and started again (``nodes[i].stop()``,
    ``.start()``, ``.process.kill()``): it rejoins the cluster; ``restore()`` starts every node
    that is not running.
    """

    def __init__(self, directory: Path, size: int = 3):
        self.dir = Path(directory)
        prefix = isolation.unique_name("mp3test")
        self.nodes = [RabbitMQNode(self.dir / f"node{i}", name=f"{prefix}_{i}")
                      for i in range(1, size + 1)]
        self.start_seconds: float | None = None  # the last start, until every node had joined
        self._cookie = secrets.token_hex(16).upper()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {', '.join(n.nodename for n in self.nodes)}>"

    @property
    def nodenames(self) -> list[str]:
        """Every node's Erlang name, the first node's first."""
        return [node.nodename for node in self.nodes]

    def _share_cookie(self) -> None:
        for node in self.nodes:
            node.dir.mkdir(parents=True, exist_ok=True)
            cookie = node.dir / ".erlang.cookie"
            if not cookie.exists():
                cookie.write_text(self._cookie)
                cookie.chmod(0o400)

    def start(self, timeout: float = 180) -> RabbitMQCluster:
        """Boot the first node, then the others side by side, each joining the first as it
        boots (peer discovery from its config); one that came up alone all the same is joined
        by hand (stop_app, join_cluster, start_app). Return once the cluster runs on all."""
        started = time.monotonic()
        self._share_cookie()
        first, others = self.nodes[0], self.nodes[1:]
        first.start(timeout)
        for node in others:
            node.seed = first.nodename
            node.launch()
        for node in others:
            node.wait_started(timeout)
        running = self.running_nodes()
        for node in others:
            if node.nodename not in running:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.nodename)
                node.ctl("start_app")
        self.wait_running(timeout)
        self.start_seconds = time.monotonic() - started
        return self

    def running_nodes(self) -> set[str]:
        """The nodes the cluster counts as running, asked of a live one."""
        status = json.loads(self.ctl("cluster_status", "--formatter", "json"))
        return set(status.get("running_nodes", []))

    def wait_running(self, timeout: float = 180) -> None:
        """Wait until every node listens for AMQP and the cluster counts all of them running."""
        deadline = time.monotonic() + timeout
        while True:
            listening = all(port_open("127.0.0.1", node.port) for node in self.nodes)
            try:
                running = listening and self.running_nodes() == set(self.nodenames)
            except RuntimeError:
                running = False
            if running:
                return
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self!r}: not every node running after {timeout:.0f}s "
                                    f"(logs under {self.dir})")
            time.sleep(0.5)

    def restore(self, timeout: float = 180) -> None:
        """Start every node that is not running (side by side: all of them may be down) and
        every application stopped with stop_app; return once all are back in the cluster."""
        stopped = [node for node in self.nodes if not node.alive]
        for node in stopped:
            node.launch()
        for node in stopped:
            node.wait_started(timeout)
        for node in self.nodes:
            if not port_open("127.0.0.1", node.port):
                node.ctl("start_app")
        self.wait_running(timeout)

    def ctl(self, *args: str, attempts: int = 4, timeout: float = 60) -> str:
        """Run rabbitmqctl against a running node (another one at each retry); its output."""
        last: Exception | None = None
        for attempt in range(attempts):
            alive = [node for node in self.nodes if node.alive] or self.nodes
            node = alive[attempt % len(alive)]
            try:
                return node.ctl(*args, attempts=1, timeout=timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                last = exc
                if attempt + 1 < attempts:
                    time.sleep(1 + attempt)
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self!r}: {last}")

    def amqp_url(self, vhost: str = "/", user: str = "guest", password: str = "guest") -> str:
        """The amqp URLs of a vhost on every node, comma-separated (as RABBITMQ_URL takes it)."""
        return ",".join(node.amqp_url(vhost, user, password) for node in self.nodes)

    def stop(self) -> None:
        """Stop every node (RabbitMQNode.stop, all at once)."""
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(RabbitMQNode.stop, self.nodes))

    def __enter__(self) -> RabbitMQCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
