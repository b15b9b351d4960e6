"""Gunicorn settings for the HTTP services (``gunicorn -c python:common.gunicorn_conf``).

The gateway faces the internet, so it runs an evented worker (gevent): a connection costs a
greenlet, not a thread, and clients that stall or trickle cannot take the slots others need.
auth is internal and CPU-bound (argon2), so it keeps threads. WEB_WORKER_CLASS overrides this.
"""

import os
import shutil
import sys
import tempfile

from common.settings import ConfigError, MetricsSettings, env_int, env_str, load_or_exit

_service = "auth" if any(arg.startswith("auth:") for arg in sys.argv) else "gateway"
WORKER_CLASSES = {
    "gthread": "gthread",  # one thread per request in progress (WEB_THREADS per worker)
    "gevent": "common.gevent_worker.GeventWorker",  # one greenlet per connection
}


def _worker_class() -> str:
    name = env_str("WEB_WORKER_CLASS", "gevent" if _service == "gateway" else "gthread")
    if name not in WORKER_CLASSES:
        raise ConfigError(f"environment variable WEB_WORKER_CLASS must be one of "
                          f"{', '.join(WORKER_CLASSES)}, got {name!r}")
    return WORKER_CLASSES[name]


bind = f"{env_str('HOST', '0.0.0.0')}:{env_int('PORT', 5000 if _service == 'auth' else 8080)}"
workers = env_int("WEB_WORKERS", 2, minimum=1)
worker_class = _worker_class()
threads = env_int("WEB_THREADS", 8, minimum=1)  # gthread only
# gevent: open connections per worker; past it, new ones wait in the listen backlog.
worker_connections = env_int("WEB_CONNECTIONS", 1000, minimum=1)
# gevent: a client that sends (or reads) nothing for this long is disconnected.
client_timeout = env_int("CLIENT_TIMEOUT_SECONDS", 60, minimum=1)
# Idle time between two requests on one connection and, with gevent, the whole time a client
# has to send a request's headers: a client that trickles them (slowloris) is disconnected.
# Behind a proxy that keeps idle connections to the gateway, set it above the proxy's idle time.
keepalive = env_int("WEB_KEEPALIVE_SECONDS", 2, minimum=1)
timeout = env_int("WEB_TIMEOUT_SECONDS", 300, minimum=1)
graceful_timeout = 30
control_socket_disable = True
accesslog = "-"
access_log_format = '%(m)s %(U)s %(s)s %(B)s %(M)sms'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "common.log.JsonFormatter", "service": _service}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json",
                            "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}

# Metrics: each worker writes its values to files in PROMETHEUS_MULTIPROC_DIR, which must be set
# before any worker imports prometheus_client; the master serves them all on METRICS_PORT.
METRICS_DIR_PREFIX = f"mp3converter-{_service}-metrics-"
OWNER_FILE = "master.pid"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a restarted container's master has the pid of the one before
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fresh_metrics_dir() -> str:
    """A new empty directory for this master's worker files; directories left behind by
    masters that no longer run (a killed container, say) are removed first."""
    parent = tempfile.gettempdir()
    for name in os.listdir(parent):
        stale = os.path.join(parent, name)
        if not name.startswith(METRICS_DIR_PREFIX) or not os.path.isdir(stale):
            continue
        try:
            with open(os.path.join(stale, OWNER_FILE)) as fh:
                owner = int(fh.read().strip() or 0)
        except (OSError, ValueError):
            owner = 0
        if not owner or not _pid_alive(owner):
            shutil.rmtree(stale, ignore_errors=True)
    path = tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX)
    with open(os.path.join(path, OWNER_FILE), "w") as fh:
        fh.write(str(os.getpid()))
    return path


metrics_settings = load_or_exit(MetricsSettings.from_env, _service)
metrics_dir = _fresh_metrics_dir() if metrics_settings.port else None
if metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir


def when_ready(server):
    """Serve every worker's metrics from the master."""
    if not metrics_dir:
        return
    from common import metrics

    metrics.configure(_service)
    metrics.serve_multiprocess(metrics_settings.port, host=metrics_settings.host)


def child_exit(server, worker):
    """Drop the live gauges (in-progress counts) of a worker that exited."""
    if metrics_dir:
        from common import metrics

        metrics.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the workers' metric files."""
    if metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def post_fork(server, worker):
    """Hand the client timeout to the worker (used by the gevent worker)."""
    worker.client_timeout = client_timeout


# Each service's settings, checked by the master before it listens (on_starting).
SETTINGS_CLASSES = {"auth": "auth.config:AuthConfig", "gateway": "gateway.config:GatewayConfig"}


def on_starting(server):
    """Read the service's settings in the master, before it listens: a missing or weak value
    stops the service with one clear line and exit code 2 (workers that cannot boot would be
    restarted in a loop on an open port)."""
    import importlib

    module_name, _, class_name = SETTINGS_CLASSES[_service].partition(":")
    settings = getattr(importlib.import_module(module_name), class_name)
    load_or_exit(settings.from_env, _service)

