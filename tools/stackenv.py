"""The environment of a private stack's services (the tests' and the soak's), built in one place."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

from tools.processes import free_port

# PYTHONPATH too: a checkout run with PYTHONPATH=src (a git worktree beside the one `.venv` was
# installed from) starts its own code, not the installed one.
BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH")
# Rate limits no ordinary test reaches (every request comes from 127.0.0.1); the tests of the
# limits themselves start their own stack with low ones.
NO_RATE_LIMITS = {
    "LOGIN_RATE_LIMIT_PER_ACCOUNT": "100000 per minute",
    "LOGIN_RATE_LIMIT_PER_ADDRESS": "100000 per minute",
    "REGISTER_RATE_LIMIT_PER_ADDRESS": "100000 per minute",
    "UPLOAD_RATE_LIMIT_PER_USER": "100000 per minute",
    "WEBHOOK_RATE_LIMIT_PER_USER": "100000 per minute",
}


def service_env(
    *,
    mysql: Mapping[str, str],
    rabbitmq_url: str,
    mongodb_uri: str,
    mongodb_db: str,
    smtp_host: str,
    smtp_port: int,
    **overrides: str,
) -> dict[str, str]:
    """Environment for every service of a stack on loopback (README: Configuration): fresh
    secrets, free ports for auth and the gateway, short retries; ``mysql`` is auth's MYSQL_*
    settings, ``overrides`` win."""
    env = {key: os.environ[key] for key in BASE_ENV_KEYS if key in os.environ}
    env.update(
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
        MONGODB_URI=mongodb_uri,
        MONGODB_DB=mongodb_db,
        RABBITMQ_URL=rabbitmq_url,
        MAX_DELIVERY_ATTEMPTS="3",
        RETRY_BASE_SECONDS="1",
        RETRY_MAX_SECONDS="5",
        HOST="127.0.0.1",
        WEB_WORKERS="2",
        WEB_THREADS="8",
        JWT_SECRET=secrets.token_urlsafe(32),
        AUTH_URL=f"http://127.0.0.1:{free_port()}",
        DOWNLOAD_URL_SECRET=secrets.token_urlsafe(32),
        PUBLIC_URL=f"http://127.0.0.1:{free_port()}",
        SHUTDOWN_GRACE_SECONDS="10",
        HEARTBEAT_MAX_AGE_SECONDS="60",
        SMTP_HOST=smtp_host,
        SMTP_PORT=str(smtp_port),
        SMTP_FROM="mp3converter@localhost",
        **NO_RATE_LIMITS,
        **mysql,
    )
    env.update(overrides)
    return env
