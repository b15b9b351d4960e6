"""Run an untrusted tool: none of our environment, its own directory, OS limits, a deadline."""

import collections
import os
import queue
import resource
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

POLL_SECONDS = 0.05  # how often the deadline and the stop event are checked
_EOF = object()  # put after the child's last stdout line: its stdout is closed
# Nothing of ours but glibc's arena count: each of ffmpeg's many threads would otherwise reserve
# a 64 MiB malloc arena of address space, and a run with a cover and chapters besides the MP3
# then fails to start threads under the address-space limit.
CHILD_ENV = {"MALLOC_ARENA_MAX": "2"}
STDERR_KEEP_BYTES = 1 << 20  # stderr kept from the start (ffmpeg's report of its input)
STDERR_TAIL_LINES = 40  # and always its last lines: the error message, the loudness summary


@dataclass(frozen=True)
class Finished:
    """How a run ended."""

    returncode: int  # negative: killed by that signal
    stderr: str  # the first STDERR_KEEP_BYTES
    tail: str  # the last STDERR_TAIL_LINES lines of stderr
    cpu_seconds: float
    stopped: str | None  # "timeout" or "stop" when this module killed it, else None


def rlimit_setter(limits: Mapping[int, int]) -> Callable[[], None]:
    """A preexec_fn that sets each limit (soft = hard) plus no core dumps, in the child."""
    items = ((resource.RLIMIT_CORE, 0), *limits.items())
    setrlimit = resource.setrlimit  # bound now: nothing is looked up after fork

    def apply() -> None:
        for which, value in items:
            setrlimit(which, (value, value))

    return apply


def run(cmd: list[str], *, cwd: str, limits: Mapping[int, int], timeout: float,
        on_line: Callable[[str], None] = lambda _line: None,
        stop: threading.Event | None = None,
        on_start: Callable[[int], None] = lambda _pid: None) -> Finished:
    """Run ``cmd`` with nothing from our environment; ``on_line`` gets each stdout line.

    The child is killed when ``timeout`` seconds pass or ``stop`` is set. ``on_start`` gets
    the child's pid before its first line. ``on_line`` runs in the calling thread; if it
    raises, the child is killed and the error propagates.
    """
    proc = subprocess.Popen(cmd, cwd=cwd, env=dict(CHILD_ENV), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", close_fds=True, preexec_fn=rlimit_setter(limits))
    on_start(proc.pid)
    lines: queue.Queue = queue.Queue()
    head: list[str] = []
    tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
    readers = [threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True),
               threading.Thread(target=_keep, args=(proc.stderr, head, tail), daemon=True)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    stopped, status, usage, ended = None, None, None, False
    exited = _exit_watch(proc.pid)
    with proc:
        try:
            while status is None:
                if ended:  # its stdout is closed: it is exiting, or has exited
                    _wait_readable(exited, POLL_SECONDS)
                else:
                    try:
                        line = lines.get(timeout=POLL_SECONDS)
                    except queue.Empty:
                        pass
                    else:
                        if line is _EOF:
                            ended = True
                        else:
                            on_line(line)
                if stopped is None:
                    if stop is not None and stop.is_set():
                        stopped = "stop"
                    elif time.monotonic() > deadline:
                        stopped = "timeout"
                    if stopped is not None:
                        _kill(proc)
                pid, status_now, usage = os.wait4(proc.pid, os.WNOHANG)
                status = status_now if pid else None
        finally:
            if exited is not None:
                os.close(exited)
            if status is None:  # on_line raised: do not leave the child running
                _kill(proc)
                _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        for reader in readers:
            reader.join(timeout=5)
        while not lines.empty():
            line = lines.get_nowait()
            if line is not _EOF:
                on_line(line)
    return Finished(proc.returncode, "".join(head), "".join(tail),
                    usage.ru_utime + usage.ru_stime, stopped)


def read_position(pid: int, path: str) -> int | None:
    """How far process ``pid`` has read into ``path``: the offset of its descriptor of that
    file (Linux's /proc); None when it has no such file open, has ended, or /proc cannot say."""
    target = os.path.realpath(path)
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in descriptors:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != target:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                for line in info:
                    if line.startswith("pos:"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return None


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the child, which only ``run`` reaps: its pid cannot belong to anyone else yet.

    Not ``proc.kill()``: that polls first and may reap the child, after which ``run``'s own
    ``os.wait4`` would find no child to wait for.
    """
    os.kill(proc.pid, signal.SIGKILL)


def _exit_watch(pid: int) -> int | None:
    """A descriptor that becomes readable when child ``pid`` exits (a pidfd, close-on-exec);
    None where the kernel gives none: its exit is then seen at the next poll."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _wait_readable(fd: int | None, seconds: float) -> None:
    """Wait until ``fd`` is readable (the child exited) or ``seconds`` pass."""
    if fd is None:
        time.sleep(seconds)
    else:
        watch = select.poll()
        watch.register(fd, select.POLLIN)
        watch.poll(seconds * 1000)


def _pump(stream, put) -> None:
    try:
        for line in stream:
            put(line)
    finally:
        put(_EOF)


def _keep(stream, head: list[str], tail: collections.deque) -> None:
    kept = 0
    for line in stream:
        if kept < STDERR_KEEP_BYTES:
            head.append(line)
            kept += len(line)
        tail.append(line)
