"""gateway: the public HTTP API — login, upload, jobs, download."""

import logging

from flask import Flask

from common import log as jsonlog
from common import metrics
from common.errors import RetryableError
from common.settings import load_or_exit
from common.web import error, register_json_errors

log = logging.getLogger(__name__)


def create_app(test_config=None) -> Flask:
    """Build the gateway Flask app; ``test_config`` may carry a ``GATEWAY`` GatewayConfig."""
    # Imported here, not in the gunicorn master, which must not load pymongo before gevent patches.
    from common.store import UNAVAILABLE as MONGO_UNAVAILABLE
    from gateway import (
        accounts,
        backends,
        download,
        health,
        jobs,
        ratelimit,
        resumable,
        tokens,
        ui,
        upload,
        verify,
        webhooks,
    )
    from gateway.config import GatewayConfig

    app = Flask(__name__)
    if test_config:
        app.config.update(test_config)
    if "GATEWAY" not in app.config:
        app.config["GATEWAY"] = load_or_exit(GatewayConfig.from_env, "gateway")
    jsonlog.configure("gateway", app.config["GATEWAY"].log_level)
    metrics.configure("gateway")
    metrics.instrument(app, refusals=True)
    for module in (accounts, upload, resumable, jobs, download, health, tokens, ui, verify,
                   webhooks):
        app.register_blueprint(module.bp)
    register_json_errors(app)
    ratelimit.init_app(app)

    @app.errorhandler(backends.AuthUnavailable)
    def _auth_down(exc):
        log.warning("auth unavailable", extra={"error": str(exc)})
        return error(503, "authentication service unavailable, try again shortly")

    @app.errorhandler(backends.AuthBusy)
    def _auth_busy(exc):
        log.warning("auth busy", extra={"retry_after": exc.retry_after})
        response = error(503, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(RetryableError)
    def _broker_down(exc):
        log.warning("broker unavailable", extra={"error": str(exc)})
        return error(503, "message broker unavailable, try again shortly")

    for exc_class in MONGO_UNAVAILABLE:
        app.register_error_handler(exc_class, _storage_down)
    return app


def _storage_down(exc):
    log.warning("mongodb unavailable", extra={"error": str(exc)})
    return error(503, "storage unavailable, try again shortly")
