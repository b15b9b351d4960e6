"""Read configuration from environment variables, failing fast on bad or missing values."""

import os
import sys
from dataclasses import dataclass

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


class ConfigError(RuntimeError):
    """A required environment variable is missing or a value cannot be parsed."""


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str:
    """Return the variable's value, its default, or raise when it is required and unset."""
    value = os.environ.get(name)
    if value is None or (required and value == ""):
        if required:
            raise ConfigError(f"environment variable {name} is required but not set")
        return default if default is not None else ""
    return value


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """Return the variable as an int."""
    raw = env_str(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"environment variable {name} must be >= {minimum}, got {value}")
    return value


def env_float(name: str, default: float) -> float:
    """Return the variable as a float."""
    raw = env_str(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from None


def env_bool(name: str, default: bool) -> bool:
    """Return the variable as a bool (1/0, true/false, yes/no, on/off)."""
    raw = env_str(name, "true" if default else "false").strip().lower()
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise ConfigError(f"environment variable {name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class MessagingSettings:
    """Broker and retry settings shared by every service that touches the queues."""

    rabbitmq_url: str
    max_attempts: int
    retry_base_seconds: float
    retry_max_seconds: float

    @classmethod
    def from_env(cls) -> "MessagingSettings":
        """Read the messaging variables."""
        return cls(
            rabbitmq_url=env_str("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
            max_attempts=env_int("MAX_DELIVERY_ATTEMPTS", 5, minimum=1),
            retry_base_seconds=env_float("RETRY_BASE_SECONDS", 5.0),
            retry_max_seconds=env_float("RETRY_MAX_SECONDS", 300.0),
        )


@dataclass(frozen=True)
class MongoSettings:
    """Where MongoDB lives."""

    uri: str
    db: str

    @classmethod
    def from_env(cls) -> "MongoSettings":
        """Read the MongoDB variables."""
        return cls(
            uri=env_str("MONGODB_URI", "mongodb://127.0.0.1:27017"),
            db=env_str("MONGODB_DB", "mp3converter"),
        )


def load_or_exit(loader, service: str):
    """Call ``loader()``; on a ConfigError print one clear line and exit with status 2."""
    try:
        return loader()
    except ConfigError as exc:
        print(f"{service}: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


@dataclass(frozen=True)
class ConsumerSettings:
    """How a queue consumer shuts down and proves it is alive."""

    grace_seconds: float
    heartbeat_file: str
    heartbeat_max_age: float

    @classmethod
    def from_env(cls, service: str, default_grace: float) -> "ConsumerSettings":
        """Read the consumer variables for ``service``."""
        return cls(
            grace_seconds=env_float("SHUTDOWN_GRACE_SECONDS", default_grace),
            heartbeat_file=env_str("HEARTBEAT_FILE", f"/tmp/{service}.heartbeat"),
            heartbeat_max_age=env_float("HEARTBEAT_MAX_AGE_SECONDS", 60.0),
        )
