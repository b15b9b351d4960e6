"""The gateway's connections: MongoDB per process, the broker per thread, auth over HTTP."""

import threading

import requests
from flask import current_app

from common.broker import Publisher
from common.store import Store

_lock = threading.Lock()
_local = threading.local()


class AuthUnavailable(Exception):
    """auth did not answer in time or answered with a server error."""


def config():
    """The app's GatewayConfig."""
    return current_app.config["GATEWAY"]


def store() -> Store:
    """The worker process's MongoDB client (created after gunicorn forks)."""
    ext = current_app.extensions
    if "store" not in ext:
        with _lock:
            if "store" not in ext:
                ext["store"] = Store(config().mongo)
    return ext["store"]


def publisher() -> Publisher:
    """This thread's own broker connection; pika connections are never shared by threads."""
    pub = getattr(_local, "publisher", None)
    if pub is None:
        messaging = config().messaging
        pub = _local.publisher = Publisher(messaging.rabbitmq_url, messaging.max_attempts)
    return pub


def call_auth(path: str, **kwargs) -> requests.Response:
    """POST to auth; raises AuthUnavailable on timeouts, refused connections and 5xx."""
    cfg = config()
    try:
        response = requests.post(f"{cfg.auth_url}{path}", timeout=cfg.auth_timeout, **kwargs)
    except requests.RequestException as exc:
        raise AuthUnavailable(str(exc)) from exc
    if response.status_code >= 500:
        raise AuthUnavailable(f"auth answered {response.status_code}")
    return response


def call_auth_health() -> None:
    """Raise AuthUnavailable unless auth's /healthz answers 200."""
    cfg = config()
    try:
        response = requests.get(f"{cfg.auth_url}/healthz", timeout=cfg.auth_timeout)
    except requests.RequestException as exc:
        raise AuthUnavailable(str(exc)) from exc
    if response.status_code != 200:
        raise AuthUnavailable(f"auth answered {response.status_code}")
