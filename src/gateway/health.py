"""GET /healthz and GET /readyz."""

import logging
import re

from flask import Blueprint

from common.web import error
from gateway import backends

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)
# user:password@ in a URI an error message may quote (amqp://, mongodb://, http://...).
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """``text`` with the credentials of every URI it contains replaced by ``***``."""
    return _CREDENTIALS.sub(r"\1***@", text)


@bp.get("/healthz")
def healthz():
    """The process is alive."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """MongoDB, RabbitMQ and auth are all reachable; which is not goes to the log only."""
    checks = {}
    for name, check in (("mongodb", lambda: backends.store().ping()),
                        ("rabbitmq", lambda: backends.publisher().ping()),
                        ("auth", lambda: backends.call_auth_health())):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks[name] = redact(f"unavailable: {exc}")
    if all(v == "ok" for v in checks.values()):
        return {"status": "ready"}
    log.warning("not ready", extra={"checks": checks})
    return error(503, "not ready")
