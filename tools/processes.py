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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

Check = Callable[[], bool]


class ProcessFailed(RuntimeError):
    """A process exited early, never became ready, or could not be started."""


LOWEST_PORT = 10000
_given: set[int] = set()
_given_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, not given before by this process.

    It is taken below the kernel's range of ephemeral ports: a server stopped and started
    again on it (a broker outage) must find it free, and in that range any outgoing connection
    may take it meanwhile, even a client retrying the stopped server, which can connect to
    itself when the kernel picks the very same port for it.
    """
    low = _ephemeral_low()
    with _given_lock:
        for _ in range(500):
            port = random.randrange(LOWEST_PORT, low) if low > LOWEST_PORT + 1000 else 0
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                port = sock.getsockname()[1]
            if port not in _given:
                _given.add(port)
                return port
    raise OSError("no free TCP port on 127.0.0.1")


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

    def _signal_group(self, sig: int) -> None:
        """Send a signal to every process in the group (children included)."""
        try:
            os.killpg(self.popen.pid, sig)
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
        if self.popen is None:
            return None
        code = self.wait(self.stop_timeout if timeout is None else timeout)
        self._signal_group(signal.SIGKILL)
        return self.popen.wait() if code is None else code

    stop = terminate

    def kill(self) -> int | None:
        """kill -9 the whole process group, as a crash would."""
        if self.popen is None:
            return None
        self._signal_group(signal.SIGKILL)
        return self.popen.wait()

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


class Stack:
    """Named processes, started in order and stopped together."""

    def __init__(self, processes: Iterable[Process] = ()):
        self.processes: dict[str, Process] = {}
        for process in processes:
            self.add(process)

    def add(self, process: Process) -> Process:
        """Add a process (not started)."""
        self.processes[process.name] = process
        return process

    def __getitem__(self, name: str) -> Process:
        return self.processes[name]

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

    def stop(self, timeout: float | None = None) -> None:
        """Terminate running processes one by one, last started first."""
        for process in reversed(self.processes.values()):
            if process.alive:
                process.terminate(timeout)

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
