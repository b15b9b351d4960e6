"""GET /healthz and GET /readyz."""

import logging

from flask import Blueprint

from common.web import error
from gateway import backends

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    """The process is alive."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """MongoDB, RabbitMQ and auth are all reachable."""
    checks = {}
    for name, check in (("mongodb", lambda: backends.store().ping()),
                        ("rabbitmq", lambda: backends.publisher().ping()),
                        ("auth", lambda: backends.call_auth_health())):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks[name] = f"unavailable: {exc}"
    if all(v == "ok" for v in checks.values()):
        return {"status": "ready", "checks": checks}
    return error(503, "not ready", checks=checks)
