"""Child processes: readiness, logs, graceful stop, kill, stacks that clean up and restart."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tools.processes import (
    Process,
    ProcessFailed,
    RestartPolicy,
    Stack,
    file_check,
    free_port,
    port_open,
    tcp_check,
)

pytestmark = pytest.mark.integration


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _http_server(tmp_path, name="web", port=None):
    port = port or free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    return Process(
        name,
        argv,
        os.environ,
        tmp_path / f"{name}.log",
        ready=tcp_check("127.0.0.1", port),
        port=port,
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_waits_until_the_port_answers_and_stops_on_terminate(tmp_path):
    server = _http_server(tmp_path).start().wait_ready(10)
    try:
        assert port_open("127.0.0.1", server.port)
    finally:
        code = server.terminate(5)
    assert code is not None and not server.alive
    assert not port_open("127.0.0.1", server.port)


def test_a_process_that_exits_early_fails_readiness_with_its_log(tmp_path):
    proc = Process(
        "broken",
        _python("import sys; print('missing JWT_SECRET'); sys.exit(3)"),
        os.environ,
        tmp_path / "broken.log",
        ready=lambda: False,
    )
    with pytest.raises(ProcessFailed, match=r"(?s)exited with code 3.*missing JWT_SECRET"):
        proc.start().wait_ready(10)


def test_readiness_times_out(tmp_path):
    proc = Process(
        "slow",
        _python("import time; time.sleep(30)"),
        os.environ,
        tmp_path / "slow.log",
        ready=lambda: False,
    )
    try:
        with pytest.raises(ProcessFailed, match="not ready after"):
            proc.start().wait_ready(0.5)
    finally:
        proc.kill()


def test_terminate_kills_a_process_that_ignores_sigterm(tmp_path):
    code = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('u' + 'p', flush=True)\ntime.sleep(60)\n"
    )
    proc = Process(
        "stubborn",
        _python(code),
        os.environ,
        tmp_path / "stubborn.log",
        ready=lambda: "up" in (tmp_path / "stubborn.log").read_text().split(),
    )
    proc.start().wait_ready(10)
    started = time.monotonic()
    assert proc.terminate(1) == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_sigterm_goes_to_the_main_process_and_it_may_finish_its_work(tmp_path):
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('draining', flush=True), sys.exit(0)))\n"
        "print('u' + 'p', flush=True)\ntime.sleep(60)\n"
    )
    log = tmp_path / "graceful.log"
    proc = Process(
        "graceful", _python(code), os.environ, log, ready=lambda: "up" in log.read_text().split()
    )
    proc.start().wait_ready(10)
    assert proc.terminate(10) == 0
    assert "draining" in proc.log_text()


def test_kill_takes_down_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    code = (
        f"import subprocess, time\np = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\ntime.sleep(60)\n"
    )
    proc = Process(
        "parent",
        _python(code),
        os.environ,
        tmp_path / "parent.log",
        ready=lambda: pidfile.exists() and pidfile.read_text() != "",
    )
    proc.start().wait_ready(10)
    child = int(pidfile.read_text())
    assert proc.kill() == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child)


def test_restart_appends_to_the_same_log(tmp_path):
    log = tmp_path / "counter.log"
    code = "import os, time\nprint('pid', os.getpid(), flush=True)\ntime.sleep(60)\n"
    proc = Process(
        "counter",
        _python(code),
        os.environ,
        log,
        ready=lambda: log.exists() and log.read_text().count("pid") == runs,
    )
    runs = 1
    proc.start().wait_ready(10)
    first_pid = proc.pid
    runs = 2
    try:
        proc.restart(10)
        assert proc.pid != first_pid and proc.alive
    finally:
        proc.terminate(5)
    assert proc.log_text().splitlines() == [f"pid {first_pid}", f"pid {proc.pid}"]


def test_a_busy_port_is_reported_before_starting(tmp_path):
    server = _http_server(tmp_path, "first").start().wait_ready(10)
    try:
        clash = _http_server(tmp_path, "second", port=server.port)
        with pytest.raises(ProcessFailed, match="already in use"):
            clash.start()
    finally:
        server.terminate(5)


def test_echo_copies_output_to_log_and_terminal(tmp_path, capfd):
    log = tmp_path / "echo.log"
    proc = Process(
        "echoer", _python("print('hello from child', flush=True)"), os.environ, log, echo=True
    )
    proc.start()
    assert proc.wait(10) == 0
    proc._echo_thread.join(5)
    assert "hello from child" in log.read_text()
    assert "echoer       | hello from child" in capfd.readouterr().out


def test_stack_stops_what_it_started_when_a_later_process_fails(tmp_path):
    web = _http_server(tmp_path)
    broken = Process(
        "broken",
        _python("raise SystemExit(1)"),
        os.environ,
        tmp_path / "broken.log",
        ready=lambda: False,
    )
    stack = Stack([web, broken])
    with pytest.raises(ProcessFailed, match="broken exited"):
        stack.start(timeout=10)
    assert not web.alive
    assert stack.failed() == [web, broken]
    assert set(stack.logs) == {"web", "broken"}
    assert "===== broken" in stack.log_tails()


def test_stack_as_context_manager_stops_everything(tmp_path):
    with Stack([_http_server(tmp_path, "a"), _http_server(tmp_path, "b")]) as stack:
        stack.start(timeout=10)
        pids = [p.pid for p in stack.processes.values()]
        assert all(p.alive for p in stack.processes.values())
    assert not any(p.alive for p in stack.processes.values())
    assert all(_gone(pid) for pid in pids)


def test_file_check_needs_a_write_after_start(tmp_path):
    path = tmp_path / "heartbeat"
    started = time.time()
    check = file_check(path, lambda: started)
    assert not check()
    path.touch()
    assert check()
    os.utime(path, (started - 60, started - 60))
    assert not check()


def test_children_die_with_the_process_that_started_them(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import os, sys, time\nsys.path.insert(0, os.getcwd())\n"
        "from tools.processes import Process\n"
        "p = Process('sleeper', ['sleep', '60'], os.environ, "
        f"__import__('pathlib').Path({str(tmp_path / 's.log')!r})).start()\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        timeout=30,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))),
    )
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def test_a_process_that_exits_is_restarted_with_a_growing_backoff(tmp_path):
    log = tmp_path / "crasher.log"
    code = "import time\nprint('start', time.time(), flush=True)\nraise SystemExit(3)\n"
    crasher = Process("crasher", _python(code), os.environ, log).start()
    said: list[str] = []
    stack = Stack([crasher]).supervise(RestartPolicy(initial=0.3, cap=1.2), log=said.append)
    try:
        _wait(lambda: crasher.restarts >= 4 and log.read_text().count("start") >= 5, 20,
              "four restarts")
    finally:
        stack.stop(5)
    assert said[:4] == [
        f"crasher exited with code 3; restarting in {d}s (restart #{n})"
        for n, d in ((1, 0.3), (2, 0.6), (3, 1.2), (4, 1.2))
    ]
    starts = [float(line.split()[1]) for line in log.read_text().splitlines()]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    for gap, delay in zip(gaps, (0.3, 0.6, 1.2, 1.2), strict=False):
        assert delay <= gap < delay + 1.5, gaps


def test_a_killed_server_is_back_on_its_port_and_its_orphans_are_gone(tmp_path):
    port = free_port()
    pidfile = tmp_path / "child.pid"
    code = (
        "import http.server, subprocess, sys\n"
        f"open({str(pidfile)!r}, 'w').write(str(subprocess.Popen(['sleep', '60']).pid))\n"
        f"http.server.test(http.server.SimpleHTTPRequestHandler, port={port}, "
        "bind='127.0.0.1')\n"
    )
    server = Process("server", _python(code), os.environ, tmp_path / "server.log",
                     ready=tcp_check("127.0.0.1", port), port=port)
    stack = Stack([server]).start(timeout=10).supervise(log=lambda line: None)
    try:
        first, orphan = server.pid, int(pidfile.read_text())
        os.kill(first, signal.SIGKILL)  # kill -9 of the main process only
        _wait(lambda: server.restarts == 1, 5, "restarted after the 1 s backoff")
        server.wait_ready(10)
        assert server.pid != first and port_open("127.0.0.1", port)
        # the rest of its process group went with it, as a pod's would
        _wait(lambda: _gone(orphan), 5, "the orphan killed")
    finally:
        stack.stop(5)
    assert not server.alive and not port_open("127.0.0.1", port)


def test_no_restart_once_the_stack_is_stopping(tmp_path):
    log = tmp_path / "crasher.log"
    crasher = Process("crasher", _python("print('start', flush=True); raise SystemExit(1)"),
                      os.environ, log)
    server = _http_server(tmp_path)
    said: list[str] = []
    stack = Stack([server, crasher]).start(["web"], timeout=10)
    crasher.start()
    stack.supervise(RestartPolicy(initial=1.0), log=said.append)
    _wait(lambda: said, 5, "the exit noticed")
    stack.stop(5)  # during the crasher's backoff; the server is terminated, not restarted
    time.sleep(1.5)
    assert not server.alive and not crasher.alive
    assert server.restarts == 0 and crasher.restarts == 0
    assert log.read_text().count("start") == 1
    assert said == ["crasher exited with code 1; restarting in 1s (restart #1)"]


def test_restarted_processes_stop_with_the_stack_and_it_can_supervise_again(tmp_path):
    server = _http_server(tmp_path)
    stack = Stack([server]).start(timeout=10).supervise(RestartPolicy(initial=0.1),
                                                        log=lambda line: None)
    server.kill()
    _wait(lambda: server.restarts == 1, 5, "restarted")
    server.wait_ready(10)
    restarted = server.pid
    stack.stop(5)
    assert _gone(restarted) and not port_open("127.0.0.1", server.port)
    stack.start(timeout=10).supervise(RestartPolicy(initial=0.1), log=lambda line: None)
    try:
        server.kill()
        _wait(lambda: server.restarts == 2, 5, "restarted by the new supervisor")
    finally:
        stack.stop(5)
