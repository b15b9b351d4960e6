"""Gunicorn settings for the HTTP services (``gunicorn -c python:common.gunicorn_conf``)."""

import sys

from common.settings import env_int, env_str

_service = "auth" if any(arg.startswith("auth:") for arg in sys.argv) else "gateway"

bind = f"{env_str('HOST', '0.0.0.0')}:{env_int('PORT', 5000 if _service == 'auth' else 8080)}"
workers = env_int("WEB_WORKERS", 2, minimum=1)
worker_class = "gthread"  # threads suit long streaming uploads and downloads
threads = env_int("WEB_THREADS", 8, minimum=1)
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
