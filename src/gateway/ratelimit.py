"""Rate limits on password checks (POST /login, DELETE /account), /register and /upload,
counted in MongoDB for every replica.

Counts are fixed windows (flask-limiter's "fixed-window" strategy) kept by
gateway.ratelimit_storage in the `rate_limits` collection of MONGODB_DB. Every attempt counts,
successful or not, so that a flood of concurrent requests cannot slip past the count.

When MongoDB does not answer, each gateway process keeps counting in memory with the same
limits (flask-limiter's in-memory fallback) and goes back to MongoDB once it answers again:
logins keep working through a MongoDB blip, and a flood is still held back, per process.

The client's address is the TCP peer's. X-Forwarded-For is believed only for the
TRUSTED_PROXY_COUNT proxies in front of the gateway (werkzeug's ProxyFix): with 0, a client
cannot choose the address it is counted under.
"""

import hashlib
import logging
import math
import time

import jwt
from flask import Flask, g, request
from flask_limiter import Limiter, RateLimitExceeded
from werkzeug.middleware.proxy_fix import ProxyFix

from common.addresses import try_canonical
from common.web import error
from gateway import backends, ratelimit_storage

log = logging.getLogger(__name__)


def client_address() -> str:
    """The key of the client's address."""
    return f"address:{request.remote_addr or 'unknown'}"


def login_account() -> str:
    """The key of the account a password is tried for: the canonical form of its address
    (``common.addresses``, hashed), which names exactly one account, as auth finds it. The
    address is the HTTP Basic user name, or the ``email`` of a Bearer token (DELETE /account),
    so that both ways of trying a password count together; "" skips it.

    (Not the account id: it is not known before auth has checked the password.) A name that is
    not an acceptable address is counted as written: auth finds no account for it."""
    creds = request.authorization
    name = ""
    if creds is not None and creds.type == "basic":
        name = creds.username or ""
    elif creds is not None and creds.type == "bearer":
        name = _token_claim(creds.token or "", "email")
    name = try_canonical(name) or name.strip()
    if not name:
        return ""
    return "account:" + hashlib.sha256(name.encode()).hexdigest()


def _token_claim(token: str, claim: str) -> str:
    """A claim of a JWT, read without checking its signature: auth refuses a forged token
    before it tries any password, so a forged claim only spends its sender's attempts."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.InvalidTokenError, RecursionError):
        return ""
    value = claims.get(claim)
    return value if isinstance(value, str) else ""


def upload_user() -> str:
    """The key of the authenticated account, by its id (login_required ran first)."""
    return f"user:{g.user}"


limiter = Limiter(key_func=client_address, strategy="fixed-window",
                  in_memory_fallback_enabled=True)


def _limits():
    return backends.config().rate_limits


# Shared by every route that checks a password (POST /login, DELETE /account): one count.
login_per_account = limiter.shared_limit(lambda: _limits().login_per_account,
                                         scope="login-account", key_func=login_account,
                                         error_message="too many login attempts for this account")
login_per_address = limiter.shared_limit(lambda: _limits().login_per_address,
                                         scope="login-address", key_func=client_address,
                                         error_message="too many login attempts from your "
                                                       "address")
register_per_address = limiter.limit(lambda: _limits().register_per_address,
                                     key_func=client_address,
                                     error_message="too many accounts created from your address")
# Shared by POST /upload and the creation of a resumable upload (POST /uploads): one count.
upload_per_user = limiter.shared_limit(lambda: _limits().upload_per_user, scope="upload-user",
                                       key_func=upload_user, error_message="too many uploads")


# Shared by POST /webhooks and POST /webhooks/<id>/test: each test send makes notification
# request the endpoint, so they are counted together, per user.
webhook_per_user = limiter.shared_limit(lambda: _limits().webhook_per_user, scope="webhook-user",
                                        key_func=upload_user,
                                        error_message="too many webhook registrations and "
                                                      "test sends")


def _too_many(exc: RateLimitExceeded):
    """429 with the wait in the message and in Retry-After."""
    wait = math.ceil(exc.limit.limit.get_expiry())
    try:
        current = limiter.current_limit
        if current is not None:
            wait = current.window.reset_time - time.time()
    except Exception:  # noqa: BLE001 - the storage failed meanwhile: the window's length
        log.warning("could not read when the rate limit resets", exc_info=True)
    wait = max(1, math.ceil(wait))
    log.info("rate limited", extra={"path": request.path, "limit": str(exc.limit.limit)})
    response = error(429, f"{exc.description}; try again in {_in_words(wait)}")
    response.headers["Retry-After"] = str(wait)
    if request.content_length:  # the body was not read: close rather than receive it for nothing
        response.headers["Connection"] = "close"
    return response


def _in_words(seconds: int) -> str:
    """'1 second', '90 seconds', '57 minutes': a wait a person reads at a glance."""
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


def init_app(app: Flask) -> None:
    """Count in MongoDB, answer 429 JSON, and trust only the configured proxies."""
    cfg = app.config["GATEWAY"]
    app.config["RATELIMIT_STORAGE_URI"] = f"plain+{cfg.mongo.uri}"
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"database": cfg.mongo.db,
                                               "collection": ratelimit_storage.COLLECTION}
    limiter.init_app(app)
    app.register_error_handler(RateLimitExceeded, _too_many)
    if cfg.trusted_proxy_count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=cfg.trusted_proxy_count, x_proto=0,
                                x_host=0, x_port=0, x_prefix=0)
