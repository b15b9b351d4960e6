"""Runs the whole stack as local processes, for `make run` and for the tests."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from tools.processes import (
    ROOT,
    Process,
    ProcessFailed,
    Stack,
    file_check,
    free_port,
    http_check,
    port_open,
    tcp_check,
)

BIN = Path(sys.executable).parent
SERVICES = ("auth", "gateway", "converter", "notification")
DEV_USER = ("dev@example.com", "devpassword")
SWEEP_INTERVAL_SECONDS = 60

DEV_DEFAULTS = {
    "LOG_LEVEL": "INFO",
    "HOST": "127.0.0.1",
    "MONGODB_URI": "mongodb://127.0.0.1:27017",
    "MONGODB_DB": "mp3converter",
    "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
    "MYSQL_HOST": "127.0.0.1",
    "MYSQL_PORT": "3306",
    "MYSQL_USER": "auth_user",
    "MYSQL_PASSWORD": "auth_password",
    "MYSQL_DB": "auth",
    "AUTH_URL": "http://127.0.0.1:5000",
    "PUBLIC_URL": "http://127.0.0.1:8080",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "1025",
}


def _raise_interrupt(*_args) -> None:
    """Signal handler: stop the stack as Ctrl-C does."""
    raise KeyboardInterrupt


def process_env(env: Mapping[str, str], **overrides: str) -> dict[str, str]:
    """Environment for one child: the given env, the venv first on PATH (the services are
    installed in it: scripts/bootstrap.sh, `pip install -e .`)."""
    merged = dict(env)
    merged.update(overrides)
    merged["PATH"] = f"{BIN}{os.pathsep}{merged.get('PATH', os.environ.get('PATH', ''))}"
    merged.setdefault("PYTHONUNBUFFERED", "1")
    return merged


def _port_of(url: str) -> int:
    """The port in a URL, defaulting by scheme."""
    parsed = urlparse(url)
    return parsed.port or {"http": 80, "https": 443, "mongodb": 27017}.get(parsed.scheme, 0)


def mongodb_process(env: Mapping[str, str], var_dir: Path, echo: bool = False) -> Process:
    """nx-27017 on the port of MONGODB_URI, data under var_dir/mongodb."""
    port = _port_of(env["MONGODB_URI"])
    data, run = var_dir / "mongodb", var_dir / "run"
    data.mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    argv = [
        str(BIN / "nx-27017"),
        "--host",
        "127.0.0.1",
        "-p",
        str(port),
        "--data-dir",
        str(data),
        "--log-file",
        str(var_dir / "log" / "mongodb-server.log"),
        "--pid-file",
        str(run / "mongodb.pid"),
    ]
    return Process(
        "mongodb",
        argv,
        process_env(env),
        var_dir / "log" / "mongodb.log",
        ready=tcp_check("127.0.0.1", port),
        port=port,
        echo=echo,
    )


def mailsink_process(env: Mapping[str, str], var_dir: Path, echo: bool = False) -> Process:
    """The SMTP sink on SMTP_HOST:SMTP_PORT storing into var_dir/mail."""
    host, port = env.get("SMTP_HOST", "127.0.0.1"), int(env.get("SMTP_PORT", "1025"))
    argv = [
        sys.executable,
        "-m",
        "tools.mailsink",
        "--host",
        host,
        "--port",
        str(port),
        "--dir",
        str(var_dir / "mail"),
    ]
    return Process(
        "mailsink",
        argv,
        process_env(env),
        var_dir / "log" / "mailsink.log",
        ready=tcp_check(host, port),
        port=port,
        echo=echo,
    )


def metrics_port(env: Mapping[str, str]) -> str:
    """A free port for one service's metrics: every service of every local stack has its own
    (METRICS_PORT=0 in ``env`` turns metrics off)."""
    return "0" if env.get("METRICS_PORT") == "0" else str(free_port())


def metrics_urls(stack: Stack) -> dict[str, str]:
    """Where each service of the stack serves its Prometheus metrics, by process name (every
    replica its own: ``gateway``, ``gateway-2``...)."""
    return {process.name: f"http://127.0.0.1:{process.env['METRICS_PORT']}/metrics"
            for service in SERVICES for process in stack.replicas(service)
            if process.env.get("METRICS_PORT", "0") != "0"}


def replica_name(service: str, k: int) -> str:
    """The k-th replica's process name: the first keeps the service's name, then
    ``service-2``, ``service-3``..."""
    return service if k == 1 else f"{service}-{k}"


def replica_url(url: str, k: int) -> str:
    """The URL of the k-th replica of a web service: the port of ``url`` plus k - 1."""
    parsed = urlparse(url)
    return urlunparse(parsed._replace(netloc=f"{parsed.hostname}:{_port_of(url) + k - 1}"))


def parse_scale(text: str) -> dict[str, int]:
    """``"gateway=2 converter=3"`` (spaces or commas between) -> replicas by service; a
    ValueError says what is wrong. auth runs once: the gateways reach it at one AUTH_URL."""
    scale: dict[str, int] = {}
    for item in text.replace(",", " ").split():
        service, sep, count = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r}: expected SERVICE=COUNT, such as gateway=2")
        if service not in SERVICES:
            raise ValueError(f"{item!r}: unknown service {service!r}; "
                             f"scalable: {', '.join(SERVICES)}")
        if service in scale:
            raise ValueError(f"{item!r}: {service} is given twice")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"{item!r}: the count must be a positive whole number")
        if service == "auth" and int(count) > 1:
            raise ValueError(f"{item!r}: auth runs once (the gateways reach it at AUTH_URL)")
        scale[service] = int(count)
    return scale


def web_process(
    name: str,
    url: str,
    env: Mapping[str, str],
    var_dir: Path,
    ready_path: str | None,
    echo: bool = False,
    service: str | None = None,
) -> Process:
    """A Flask service (``service``, default ``name``; ``name`` may be a replica's) under
    gunicorn, listening on the port of its URL."""
    port = _port_of(url)
    app = f"{service or name}:create_app()"
    argv = [str(BIN / "gunicorn"), "-c", "python:common.gunicorn_conf", app]
    ready = (
        http_check(f"http://127.0.0.1:{port}{ready_path}", "application/json")
        if ready_path
        else tcp_check("127.0.0.1", port)
    )
    return Process(
        name,
        argv,
        process_env(env, HOST="127.0.0.1", PORT=str(port), METRICS_PORT=metrics_port(env)),
        var_dir / "log" / f"{name}.log",
        ready=ready,
        port=port,
        echo=echo,
    )


def consumer_process(
    name: str, env: Mapping[str, str], var_dir: Path, echo: bool = False,
    service: str | None = None,
) -> Process:
    """`python -m <service>` (default ``name``; ``name`` may be a replica's); ready once its
    heartbeat file is written."""
    service = service or name
    heartbeat = var_dir / "run" / f"{name}.heartbeat"
    heartbeat.parent.mkdir(parents=True, exist_ok=True)
    grace = float(env.get("SHUTDOWN_GRACE_SECONDS", "600" if service == "converter" else "60"))
    process = Process(
        name,
        [sys.executable, "-m", service],
        process_env(env, HEARTBEAT_FILE=str(heartbeat), METRICS_PORT=metrics_port(env)),
        var_dir / "log" / f"{name}.log",
        echo=echo,
        stop_timeout=min(grace + 5, 30.0),
    )
    process.ready = file_check(heartbeat, lambda: process.started_at)
    return process


def build_stack(
    env: Mapping[str, str],
    var_dir: Path,
    *,
    with_mongodb: bool = True,
    with_mailsink: bool = True,
    services: Iterable[str] = SERVICES,
    echo: bool = False,
    scale: Mapping[str, int] | None = None,
) -> Stack:
    """Processes for the stack; ports come from MONGODB_URI, SMTP_PORT, AUTH_URL and PUBLIC_URL.

    ``scale`` runs more than one replica of a service (default one): ``gateway``,
    ``gateway-2``... each with its own log, metrics port and heartbeat file; the k-th gateway
    listens on PUBLIC_URL's port + k - 1."""
    var_dir = Path(var_dir)
    scale = dict(scale or {})
    bad = {s: n for s, n in scale.items()
           if s not in SERVICES or n < 1 or (s == "auth" and n > 1)}
    if bad:
        raise ValueError(f"cannot scale {bad}: services {SERVICES} (auth once), counts >= 1")
    stack = Stack()
    if with_mongodb:
        stack.add(mongodb_process(env, var_dir, echo))
    if with_mailsink:
        stack.add(mailsink_process(env, var_dir, echo))
    for service in services:
        for k in range(1, scale.get(service, 1) + 1):
            name = replica_name(service, k)
            if service == "auth":
                stack.add(web_process(name, env["AUTH_URL"], env, var_dir, "/healthz", echo,
                                      service))
            elif service == "gateway":
                url = replica_url(env["PUBLIC_URL"], k)
                stack.add(web_process(name, url, env, var_dir, "/healthz", echo, service))
            else:
                stack.add(consumer_process(name, env, var_dir, echo, service))
    return stack


def flask_command(
    app: str,
    args: list[str],
    env: Mapping[str, str],
    log_path: Path,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """Run `flask --app APP ARGS...`, appending its output to a log file."""
    return _logged_run([str(BIN / "flask"), "--app", app, *args], f"flask --app {app}", args,
                       env, log_path, stdin, timeout)


def ops_command(
    args: list[str], env: Mapping[str, str], log_path: Path, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run `python -m ops ARGS...` (the operator commands), appending its output to a log file."""
    return _logged_run([sys.executable, "-m", "ops", *args], "python -m ops", args, env,
                       log_path, None, timeout)


def _logged_run(
    cmd: list[str],
    program: str,
    args: list[str],
    env: Mapping[str, str],
    log_path: Path,
    stdin: str | None,
    timeout: float,
) -> subprocess.CompletedProcess:
    """Run a command of the project in its environment; its output is appended to a log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        cmd,
        env=process_env(env),
        cwd=ROOT,
        input=stdin or "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    with open(log_path, "a") as log:
        log.write(f"--- {program} {' '.join(args)} -> {result.returncode}\n")
        log.write(result.stdout + result.stderr)
    return result


def init_db(env: Mapping[str, str], log_path: Path) -> None:
    """Create or migrate auth's schema (idempotent): ``init-db``, which every release has (it
    runs ``db-upgrade`` since migrations are versioned), so that the upgrade drill can start
    the previous release with these tools."""
    result = flask_command("auth", ["init-db"], env, log_path)
    if result.returncode != 0:
        raise ProcessFailed(f"flask --app auth init-db failed:\n{result.stdout}{result.stderr}")


def create_user(env: Mapping[str, str], email: str, password: str, log_path: Path) -> bool:
    """Create a user; False when it already exists."""
    result = flask_command(
        "auth", ["create-user", email, "--password-stdin"], env, log_path, stdin=password + "\n"
    )
    if result.returncode == 0:
        return True
    if "exist" in (result.stdout + result.stderr).lower():
        return False
    raise ProcessFailed(f"flask --app auth create-user failed:\n{result.stdout}{result.stderr}")


def verify_user(env: Mapping[str, str], email: str, log_path: Path) -> None:
    """Mark an existing user's email as confirmed (a dev user made before verification existed)."""
    result = flask_command("auth", ["verify-user", email], env, log_path)
    if result.returncode != 0:
        raise ProcessFailed(f"flask --app auth verify-user failed:\n{result.stdout}{result.stderr}")


def load_or_create_secrets(path: Path) -> dict[str, str]:
    """JWT_SECRET and DOWNLOAD_URL_SECRET, generated once and kept in path."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    missing = [k for k in ("JWT_SECRET", "DOWNLOAD_URL_SECRET") if not values.get(k)]
    if missing:
        for key in missing:
            values[key] = secrets.token_urlsafe(48)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        tmp.chmod(0o600)
        os.replace(tmp, path)
    return values


def dev_env(var_dir: Path) -> dict[str, str]:
    """Defaults, then var/dev.env, then the caller's environment (which wins)."""
    env = {**DEV_DEFAULTS, **load_or_create_secrets(var_dir / "dev.env")}
    env.update(os.environ)
    return env


TRY_IT = """
The stack is up. {gateways}Try it:

  GW={gw}
  curl -X POST $GW/login -u {email}:{password}
  JWT=$(curl -s -X POST $GW/login -u {email}:{password})
  curl -X POST -F 'file=@video.mkv' -H "Authorization: Bearer $JWT" $GW/upload
  curl -H "Authorization: Bearer $JWT" $GW/jobs          # mp3_fid appears when done
  curl --output x.mp3 -H "Authorization: Bearer $JWT" "$GW/download?fid=$FID"

Mail goes to {mail}/, logs to {logs}/. Prometheus metrics:
{metrics}
{prometheus}A process that exits is restarted (1 s, doubling up to 30 s). Ctrl-C stops everything.
"""


def _sweep(env: Mapping[str, str], log_path: Path) -> None:
    """Run `python -m ops sweep` once, reporting a failure without stopping."""
    try:
        result = ops_command(["sweep"], env, log_path)
    except subprocess.TimeoutExpired:
        print(f"sweep timed out, see {log_path}", flush=True)
        return
    if result.returncode != 0:
        print(f"sweep failed ({result.returncode}), see {log_path}", flush=True)


def dev_stack(
    var_dir: Path, scale: Mapping[str, int] | None = None
) -> tuple[dict[str, str], Stack]:
    """The `make run` stack; no nx-27017 when the caller points MONGODB_URI elsewhere."""
    env = dev_env(var_dir)
    with_mongodb = "MONGODB_URI" not in os.environ
    return env, build_stack(env, var_dir, with_mongodb=with_mongodb, echo=True, scale=scale)


def _gateways_text(stack: Stack) -> str:
    """The line per gateway replica of the start-up text, when there is more than one."""
    gateways = stack.replicas("gateway")
    if len(gateways) < 2:
        return ""
    return "Its gateways, any of which serves every request:\n" + "".join(
        f"  {p.name:<15} http://127.0.0.1:{p.port}\n" for p in gateways) + "\n"


PROMETHEUS_PORT = 9090  # `make run MONITOR=1`: the usual port when it is free


def monitor_process(stack: Stack, var_dir: Path) -> Process:
    """A real Prometheus scraping the stack's services every 5 s, with the alerting rules of
    manifests/components/monitoring loaded (its /alerts page shows them)."""
    from tools.monitoring import rules_file
    from tools.prometheus import prometheus_process

    port = PROMETHEUS_PORT if not port_open("127.0.0.1", PROMETHEUS_PORT) else None
    return prometheus_process(metrics_urls(stack), var_dir / "prometheus", interval="5s",
                              port=port, rules=rules_file())


def run(
    var_dir: Path = ROOT / "var", monitor: bool = False, scale: Mapping[str, int] | None = None
) -> int:
    """Start everything (``scale``: replicas by service; Prometheus when ``monitor``), restart
    whatever exits, sweep every minute, and stop it all on Ctrl-C or SIGTERM."""
    env, stack = dev_stack(var_dir, scale)
    if monitor:
        stack.add(monitor_process(stack, var_dir))
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    sweep_log = var_dir / "log" / "sweep.log"
    try:
        init_db(env, var_dir / "log" / "auth-cli.log")
        if create_user(env, *DEV_USER, var_dir / "log" / "auth-cli.log"):
            print(f"created user {DEV_USER[0]}", flush=True)
        else:
            verify_user(env, DEV_USER[0], var_dir / "log" / "auth-cli.log")
        stack.start()
        print(
            TRY_IT.format(
                gateways=_gateways_text(stack),
                gw=env["PUBLIC_URL"],
                email=DEV_USER[0],
                password=DEV_USER[1],
                mail=var_dir / "mail",
                logs=var_dir / "log",
                metrics="\n".join(f"  {name:<15} {url}"
                                   for name, url in metrics_urls(stack).items()) or "  (off)",
                prometheus=(f"Prometheus (alerts at /alerts): "
                            f"http://127.0.0.1:{stack['prometheus'].port}\n" if monitor else ""),
            ),
            flush=True,
        )
        stack.supervise()
        next_sweep = time.monotonic() + SWEEP_INTERVAL_SECONDS
        while True:
            time.sleep(1)
            if time.monotonic() >= next_sweep:
                _sweep(env, sweep_log)
                next_sweep = time.monotonic() + SWEEP_INTERVAL_SECONDS
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    except ProcessFailed as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="start the whole stack in the foreground")
    run_parser.add_argument("--var-dir", type=Path, default=ROOT / "var")
    run_parser.add_argument("--monitor", action="store_true",
                            help="also start Prometheus scraping the services, with the alerts")
    run_parser.add_argument("--scale", nargs="+", default=[], metavar="SERVICE=COUNT",
                            help="replicas of a service, such as gateway=2 converter=3 "
                                 "(default one each; auth runs once)")
    args = parser.parse_args(argv)
    try:
        scale = parse_scale(" ".join(args.scale))
    except ValueError as exc:
        run_parser.error(f"--scale: {exc}")
    return run(args.var_dir.resolve(), monitor=args.monitor, scale=scale)


if __name__ == "__main__":
    sys.exit(main())
