"""Gunicorn settings for the HTTP services (``gunicorn -c python:common.gunicorn_conf``).

The gateway faces the internet, so it runs an evented worker (gevent): a connection costs a
greenlet, not a thread, and clients that stall or trickle cannot take the slots others need.
auth is internal and CPU-bound (argon2), so it keeps threads. WEB_WORKER_CLASS overrides this.
"""

import sys

from common.settings import ConfigError, env_int, env_str, load_or_exit

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

