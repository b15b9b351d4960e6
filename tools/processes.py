"""Child processes with log files, readiness checks and clean shutdown, grouped as a stack."""

from __future__ import annotations

import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

Check = Callable[[], bool]


class ProcessFailed(RuntimeError):
    """A process exited early, never became ready, or could not be started."""


LOWEST_PORT = 10000
_given: set[int] = set()
_given_lock = threading.Lock()


def free_port(count: int = 1) -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, not given before by this process;
    with ``count``, the first of that many consecutive such ports (replicas of a web service
    listen on a port and the next ones), all reserved.

    It is taken below the kernel's range of ephemeral ports: a server stopped and started
    again on it (a broker outage) must find it free, and in that range any outgoing connection
    may take it meanwhile, even a client retrying the stopped server, which can connect to
    itself when the kernel picks the very same port for it.
    """
    low = _ephemeral_low()
    with _given_lock:
        for _ in range(500):
            first = random.randrange(LOWEST_PORT, low - count) if low > LOWEST_PORT + 1000 else 0
            ports = []
            for port in range(first, first + count) if first else [0]:
                with socket.socket() as sock:
                    try:
                        sock.bind(("127.0.0.1", port))
                    except OSError:
                        break
                    ports.append(sock.getsockname()[1])
            if len(ports) == count and not _given.intersection(ports):
                _given.update(ports)
                return ports[0]
    raise OSError(f"no {count} free consecutive TCP ports on 127.0.0.1")


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; 32768 elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as src:
            return int(src.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tcp_check(host: str, port: int) -> Check:
    """Readiness: the port accepts connections."""
    return lambda: port_open(host, port)


def http_check(url: str, content_type: str | None = None) -> Check:
    """Readiness: GET url answers 200 (with ``content_type``, when given: a server that took
    the port first, such as a metrics endpoint answering every path, is not the service)."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200 and (
                    content_type is None or resp.headers.get_content_type() == content_type)
        except (OSError, urllib.error.URLError):
            return False

    return check


def file_check(path: Path, since: Callable[[], float]) -> Check:
    """Readiness: the file was written after the process started."""

    def check() -> bool:
        try:
            return path.stat().st_mtime >= since() - 1
        except FileNotFoundError:
            return False

    return check


_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the thread that started it ends (PR_SET_PDEATHSIG)."""
    _LIBC.prctl(1, signal.SIGTERM)


class Process:
    """One child process in its own process group, with a log file and a readiness check."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        ready: Check | None = None,
        port: int | None = None,
        echo: bool = False,
        stop_timeout: float = 20.0,
        cwd: Path = ROOT,
    ):
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.ready = ready
        self.port = port
        self.echo = echo
        self.stop_timeout = stop_timeout
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None
        self.started_at = 0.0
        self.restarts = 0  # how many times a supervising stack started it again after an exit
        self._echo_thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<Process {self.name} pid={self.pid} returncode={self.returncode}>"

    @property
    def pid(self) -> int | None:
        """Pid of the main process, None before start."""
        return self.popen.pid if self.popen else None

    @property
    def returncode(self) -> int | None:
        """Exit code, None while running or before start."""
        return self.popen.poll() if self.popen else None

    @property
    def alive(self) -> bool:
        """True while the main process runs."""
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> Process:
        """Start the process; its output is appended to the log file (and echoed when asked)."""
        if self.alive:
            raise ProcessFailed(f"{self.name} is already running (pid {self.pid})")
        if self.port is not None and port_open("127.0.0.1", self.port):
            raise ProcessFailed(f"{self.name}: port {self.port} is already in use")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.started_at = time.time()
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.echo else log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        if self.echo:
            self._echo_thread = threading.Thread(target=self._pump, args=(log,), daemon=True)
            self._echo_thread.start()
        else:
            log.close()
        return self

    def _pump(self, log) -> None:
        """Copy the child's output to the log file and to the terminal."""
        prefix = f"{self.name:<12} | ".encode()
        with log:
            for line in self.popen.stdout:
                log.write(line)
                log.flush()
                sys.stdout.buffer.write(prefix + line)
                sys.stdout.flush()

    def wait_ready(self, timeout: float = 60.0) -> Process:
        """Block until the readiness check passes; raise ProcessFailed if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise ProcessFailed(
                    f"{self.name} exited with code {self.returncode} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self.ready is None or self.ready():
                return self
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"{self.name} was not ready after {timeout:.0f}s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def send_signal(self, sig: int) -> None:
        """Send a signal to the main process only."""
        if self.alive:
            os.kill(self.popen.pid, sig)

    def _signal_group(self, sig: int, popen: subprocess.Popen | None = None) -> None:
        """Send a signal to every process in the group (children included)."""
        try:
            os.killpg((popen or self.popen).pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the main process to exit; None on timeout."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout: float | None = None) -> int | None:
        """SIGTERM to the main process, SIGKILL to the whole group after the timeout."""
        if self.popen is None:
            return None
        self.send_signal(signal.SIGTERM)
        return self.reap(timeout)

    def reap(self, timeout: float | None = None) -> int | None:
        """Wait for exit up to the timeout, then SIGKILL whatever is left of the group."""
        popen = self.popen  # a supervisor may start a new one meanwhile
        if popen is None:
            return None
        try:
            code = popen.wait(self.stop_timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            code = None
        self._signal_group(signal.SIGKILL, popen)
        return popen.wait() if code is None else code

    stop = terminate

    def kill(self) -> int | None:
        """kill -9 the whole process group, as a crash would."""
        popen = self.popen  # a supervisor may start a new one meanwhile
        if popen is None:
            return None
        self._signal_group(signal.SIGKILL, popen)
        return popen.wait()

    def restart(self, timeout: float = 60.0) -> Process:
        """Stop if running, start again and wait until ready."""
        if self.alive:
            self.terminate()
        return self.start().wait_ready(timeout)

    def log_text(self) -> str:
        """Everything the process wrote to its log file so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the log file."""
        return "\n".join(self.log_text().splitlines()[-lines:])


@dataclass(frozen=True)
class RestartPolicy:
    """Capped exponential backoff between restarts, as Kubernetes does for a crashing container:
    ``initial`` seconds, doubling up to ``cap``; back to ``initial`` once a process has stayed
    up ``reset_after`` seconds."""

    initial: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0

    def delay(self, previous: float | None, uptime: float) -> float:
        """Seconds to wait before the next restart, given the delay before the previous one
        (None: never restarted) and how long the process ran before it exited."""
        if previous is None or uptime >= self.reset_after:
            return self.initial
        return min(previous * 2, self.cap)


def _say(line: str) -> None:
    """Print a line of the supervisor to the terminal."""
    print(line, flush=True)


class Stack:
    """Named processes, started in order and stopped together; restarted when supervised."""

    def __init__(self, processes: Iterable[Process] = ()):
        self.processes: dict[str, Process] = {}
        self._supervisor: threading.Thread | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._stopping = False
        for process in processes:
            self.add(process)

    def add(self, process: Process) -> Process:
        """Add a process (not started)."""
        self.processes[process.name] = process
        return process

    def __getitem__(self, name: str) -> Process:
        return self.processes[name]

    def replicas(self, service: str) -> list[Process]:
        """The processes of one service: named ``service``, then ``service-2``, ``service-3``..."""
        found = [p for name, p in self.processes.items()
                 if name == service or (name.startswith(f"{service}-")
                                        and name[len(service) + 1:].isdigit())]
        return sorted(found, key=lambda p: int(p.name.rpartition("-")[2])
                      if p.name != service else 1)

    @property
    def logs(self) -> dict[str, Path]:
        """Log file of every process by name."""
        return {name: p.log_path for name, p in self.processes.items()}

    def start(
        self, names: Iterable[str] | None = None, timeout: float = 60.0, together: bool = False
    ) -> Stack:
        """Start processes in order (all at once when `together`), wait until ready; on failure
        stop them all."""
        selected = [self.processes[name] for name in names or list(self.processes)]
        try:
            for process in selected:
                process.start()
                if not together:
                    process.wait_ready(timeout)
            for process in selected:
                process.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def supervise(
        self,
        policy: RestartPolicy | None = None,
        log: Callable[[str], None] = _say,
        interval: float = 0.2,
    ) -> Stack:
        """Restart, on a background thread, every started process that exits while the stack
        is not stopping, after the policy's backoff (default: 1 s doubling to 30 s, reset after
        60 s up), as a pod's container is: whatever the exit (a crash, ``kill -9``, even a
        ``terminate()`` by hand; ``stop()`` is the way to stop), and what the process left in
        its group is killed first. Each restart is logged and counted in ``Process.restarts``,
        and does not wait for readiness. The thread lives until ``stop()``: the processes it
        starts get SIGTERM when it ends (PR_SET_PDEATHSIG)."""
        if self._supervisor is not None:
            return self
        with self._lock:
            self._stopping = False
        self._halt.clear()
        self._supervisor = threading.Thread(
            target=self._supervise, args=(policy or RestartPolicy(), log, interval),
            name="stack-supervisor", daemon=True)
        self._supervisor.start()
        return self

    def _supervise(self, policy: RestartPolicy, log: Callable[[str], None],
                   interval: float) -> None:
        """The supervisor's loop: notice exits, wait out the backoff, start again."""
        delays: dict[str, float] = {}  # delay before each process's latest restart
        due: dict[str, float] = {}  # process name -> monotonic time of its next start
        while not self._halt.wait(interval):
            with self._lock:
                if self._stopping:
                    continue
                now = time.monotonic()
                for process in list(self.processes.values()):
                    if process.popen is None or process.alive:
                        continue
                    name = process.name
                    if name not in due:
                        process._signal_group(signal.SIGKILL)  # what it left behind, as a pod
                        uptime = time.time() - process.started_at
                        delays[name] = policy.delay(delays.get(name), uptime)
                        due[name] = now + delays[name]
                        log(f"{name} exited with code {process.returncode}; restarting in "
                            f"{delays[name]:g}s (restart #{process.restarts + 1})")
                    elif now >= due[name]:
                        try:
                            process.start()
                        except (OSError, ProcessFailed) as exc:
                            delays[name] = policy.delay(delays[name], 0.0)
                            due[name] = now + delays[name]
                            log(f"{name} could not be restarted ({exc}); "
                                f"trying again in {delays[name]:g}s")
                            continue
                        process.restarts += 1
                        del due[name]

    def stop(self, timeout: float | None = None) -> None:
        """Stop restarting first, then terminate running processes one by one, last started
        first; the supervisor's thread ends after them."""
        supervisor = self._supervisor
        if supervisor is not None:
            with self._lock:
                self._stopping = True
        try:
            for process in reversed(self.processes.values()):
                if process.alive:
                    process.terminate(timeout)
        finally:
            if supervisor is not None:
                self._halt.set()
                supervisor.join()
                self._supervisor = None

    def failed(self) -> list[Process]:
        """Started processes that are no longer running."""
        return [p for p in self.processes.values() if p.popen is not None and not p.alive]

    def log_tails(self, lines: int = 40) -> str:
        """The last log lines of every process, one block each."""
        return "\n".join(
            f"===== {p.name} ({p.log_path}) =====\n{p.log_tail(lines)}"
            for p in self.processes.values()
        )

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
