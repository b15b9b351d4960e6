"""The gateway's connections: MongoDB and a pool of broker connections per process, auth over
HTTP. Safe for threads and for gevent's greenlets alike (locks are patched with the rest)."""

import threading

import requests
from flask import current_app

from common import indexes
from common.broker import PublisherPool
from common.jobs import Jobs
from common.quotas import Quotas
from common.store import Store

_lock = threading.Lock()


class AuthUnavailable(Exception):
    """auth did not answer in time or answered with a server error."""


class AuthBusy(AuthUnavailable):
    """auth is checking as many passwords as it may at once: its 503 and Retry-After."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def config():
    """The app's GatewayConfig."""
    return current_app.config["GATEWAY"]


def store() -> Store:
    """The worker process's MongoDB client (created after gunicorn forks), with the indexes
    its queries need (common.indexes)."""
    ext = current_app.extensions
    if "store" not in ext:
        with _lock:
            if "store" not in ext:
                mongo = Store(config().mongo)
                # first use in the process: at its readiness check
                mongo.ensure_indexes(indexes.GATEWAY)
                ext["store"] = mongo
    return ext["store"]


def jobs() -> Jobs:
    """The jobs of the worker process's MongoDB client: every change to a job goes through it."""
    ext = current_app.extensions
    if "jobs" not in ext:
        mongo = store()  # before taking the lock: store() takes it too
        with _lock:
            if "jobs" not in ext:
                ext["jobs"] = Jobs(mongo, config().lifecycle)
    return ext["jobs"]


def quotas() -> Quotas:
    """The owners' usage and uploads in progress, on the worker process's MongoDB client."""
    return Quotas(store())


def publisher() -> PublisherPool:
    """The worker process's broker connections: each publish or ping borrows one for itself.

    A pika connection is never used by two threads or greenlets at once, and a process keeps at
    most BROKER_POOL_SIZE of them, however many requests are in progress.
    """
    ext = current_app.extensions
    if "publishers" not in ext:
        with _lock:
            if "publishers" not in ext:
                cfg = config()
                ext["publishers"] = PublisherPool(cfg.messaging.rabbitmq_url,
                                                  cfg.messaging.max_attempts,
                                                  cfg.broker_pool_size)
    return ext["publishers"]


def call_auth(path: str, method: str = "POST", **kwargs) -> requests.Response:
    """Call auth (POST unless told); raises AuthUnavailable on timeouts, refused connections
    and 5xx, AuthBusy on a 503 with Retry-After (every password check slot taken)."""
    cfg = config()
    try:
        response = requests.request(method, f"{cfg.auth_url}{path}", timeout=cfg.auth_timeout,
                                    **kwargs)
    except requests.RequestException as exc:
        raise AuthUnavailable(str(exc)) from exc
    retry_after = response.headers.get("Retry-After", "")
    if response.status_code == 503 and retry_after.isdigit():
        raise AuthBusy(_error_of(response, f"the server is busy; try again in {retry_after} "
                                           "seconds"), max(1, int(retry_after)))
    if response.status_code >= 500:
        raise AuthUnavailable(f"auth answered {response.status_code}")
    return response


def _error_of(response: requests.Response, default: str) -> str:
    """The ``error`` of a JSON answer, else ``default``."""
    try:
        body = response.json()
    except ValueError:
        return default
    message = body.get("error") if isinstance(body, dict) else None
    return message if isinstance(message, str) and message else default


def call_auth_health() -> None:
    """Raise AuthUnavailable unless auth's /healthz answers 200."""
    cfg = config()
    try:
        response = requests.get(f"{cfg.auth_url}/healthz", timeout=cfg.auth_timeout)
    except requests.RequestException as exc:
        raise AuthUnavailable(str(exc)) from exc
    if response.status_code != 200:
        raise AuthUnavailable(f"auth answered {response.status_code}")
