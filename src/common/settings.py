"""Read configuration from environment variables, failing fast on bad or missing values."""

import os
import sys
import urllib.parse
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


# Placeholders committed in manifests/overlays/minikube/secrets/*.env.example: a service refuses
# to sign with one of them, whatever its length. (The podman overlay's test-only keys are random.)
EXAMPLE_SECRETS = frozenset({"change-me", "change-me-too"})
MIN_SECRET_BYTES = 32


def env_secret(name: str, min_bytes: int = MIN_SECRET_BYTES) -> str:
    """Return a required signing key; refuse a committed example value or one too short."""
    value = env_str(name, required=True)
    hint = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if value in EXAMPLE_SECRETS:
        raise ConfigError(f"environment variable {name} is the example value from the "
                          f"repository, which everyone knows; {hint}")
    if len(value.encode()) < min_bytes:
        raise ConfigError(f"environment variable {name} is too short: {len(value.encode())} "
                          f"bytes, at least {min_bytes} are needed; {hint}")
    return value


def env_bool(name: str, default: bool) -> bool:
    """Return the variable as a bool (1/0, true/false, yes/no, on/off)."""
    raw = env_str(name, "true" if default else "false").strip().lower()
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise ConfigError(f"environment variable {name} must be true or false, got {raw!r}")


AMQP_SCHEMES = ("amqp", "amqps")


def amqp_urls(value: str) -> list[str]:
    """The broker addresses of a RABBITMQ_URL: one AMQP URL, or several separated by commas."""
    return [part.strip() for part in value.split(",")]


def env_amqp_urls(name: str, default: str) -> str:
    """Return the variable: one amqp:// or amqps:// URL, or several separated by commas (the
    nodes of one cluster, same virtual host), each checked."""
    raw = env_str(name, default)
    vhosts = set()
    for position, url in enumerate(amqp_urls(raw), 1):
        where = f"environment variable {name}, address {position}"
        if not url:
            raise ConfigError(f"{where} is empty: give one amqp:// URL, or several separated "
                              "by commas")
        # The messages never repeat the value: it holds the broker's password.
        try:
            parts = urllib.parse.urlsplit(url)
            _ = parts.port  # raises ValueError when it is no number
        except ValueError as exc:
            raise ConfigError(f"{where} is not a valid URL ({exc})") from None
        if parts.scheme not in AMQP_SCHEMES:
            raise ConfigError(f"{where} must be an amqp:// or amqps:// URL, not "
                              f"{parts.scheme + '://' if parts.scheme else 'without a scheme'}")
        if not parts.hostname:
            raise ConfigError(f"{where} names no host")
        vhosts.add(urllib.parse.unquote(parts.path[1:]) or "/")  # as pika reads it
    if len(vhosts) > 1:
        raise ConfigError(f"environment variable {name}: every address must name the same "
                          f"virtual host (the nodes of one cluster), got {sorted(vhosts)}")
    return raw


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
            rabbitmq_url=env_amqp_urls("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
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


@dataclass(frozen=True)
class MySQLSettings:
    """Where auth's MariaDB database lives and who logs in to it (auth, the backup commands)."""

    host: str
    port: int
    user: str
    password: str
    db: str

    @classmethod
    def from_env(cls) -> "MySQLSettings":
        """Read MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD and MYSQL_DB."""
        return cls(
            host=env_str("MYSQL_HOST", "127.0.0.1"),
            port=env_int("MYSQL_PORT", 3306, minimum=1),
            user=env_str("MYSQL_USER", "auth_user"),
            password=env_str("MYSQL_PASSWORD", ""),
            db=env_str("MYSQL_DB", "auth"),
        )


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the mail server that delivers the emails users receive."""

    host: str
    port: int
    starttls: bool
    username: str
    password: str
    sender: str
    timeout: float

    @classmethod
    def from_env(cls) -> "SmtpSettings":
        """Read the SMTP variables."""
        return cls(
            host=env_str("SMTP_HOST", "127.0.0.1"),
            port=env_int("SMTP_PORT", 1025, minimum=1),
            starttls=env_bool("SMTP_STARTTLS", False),
            username=env_str("SMTP_USERNAME", ""),
            password=env_str("SMTP_PASSWORD", ""),
            sender=env_str("SMTP_FROM", "mp3converter@localhost"),
            timeout=env_float("SMTP_TIMEOUT_SECONDS", 10.0),
        )


@dataclass(frozen=True)
class LifecycleSettings:
    """How long files live and how many of one owner's jobs wait in the queue at once."""

    keep_source_videos: bool = False
    mp3_retention_seconds: float = 168 * 3600.0
    conversions_at_once: int = 2

    @classmethod
    def from_env(cls) -> "LifecycleSettings":
        """Read KEEP_SOURCE_VIDEOS, MP3_RETENTION_HOURS and USER_CONVERSIONS_AT_ONCE."""
        hours = env_float("MP3_RETENTION_HOURS", 168.0)
        if hours <= 0:
            raise ConfigError(f"environment variable MP3_RETENTION_HOURS must be > 0, got {hours}")
        return cls(
            keep_source_videos=env_bool("KEEP_SOURCE_VIDEOS", False),
            mp3_retention_seconds=hours * 3600.0,
            conversions_at_once=env_int("USER_CONVERSIONS_AT_ONCE", 2, minimum=1),
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


@dataclass(frozen=True)
class MetricsSettings:
    """Where a service serves its Prometheus metrics (never its public port)."""

    port: int = 9100  # 0: no metrics endpoint
    host: str = "0.0.0.0"  # HOST: the address the service listens on, its metrics included

    @classmethod
    def from_env(cls) -> "MetricsSettings":
        """Read METRICS_PORT and HOST (the address auth's and the gateway's API binds too)."""
        port = env_int("METRICS_PORT", 9100, minimum=0)
        if port > 65535:
            raise ConfigError(f"environment variable METRICS_PORT must be <= 65535, got {port}")
        return cls(port=port, host=env_str("HOST", "0.0.0.0"))


# -- webhooks -------------------------------------------------------------------------------
MAX_RETRY_DELAYS = 12  # delay queues `webhooks.deliver.delay.1..12` (common.topology)


def env_delays(name: str, default: str) -> tuple[float, ...]:
    """Comma-separated seconds, each > 0, at most MAX_RETRY_DELAYS of them."""
    raw = env_str(name, default)
    try:
        delays = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        delays = ()
    if not delays or any(d <= 0 for d in delays) or len(delays) > MAX_RETRY_DELAYS:
        raise ConfigError(f"environment variable {name} must list 1 to {MAX_RETRY_DELAYS} "
                          f"delays in seconds, each above 0, separated by commas; got {raw!r}")
    return delays


def env_networks(name: str) -> tuple:
    """Comma-separated networks (CIDR), empty by default."""
    raw = env_str(name, "")
    try:
        from common import egress  # which needs nothing of this module

        return egress.parse_networks(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must list networks such as "
                          f"10.1.0.0/16, separated by commas: {exc}") from None


@dataclass(frozen=True)
class WebhookLimits:
    """What a webhook endpoint may be (the gateway checks it at registration)."""

    per_account: int = 10
    url_max_length: int = 2000
    allowed_networks: tuple = ()

    @classmethod
    def from_env(cls) -> "WebhookLimits":
        d = cls()
        return cls(
            per_account=env_int("WEBHOOKS_PER_ACCOUNT", d.per_account, minimum=1),
            url_max_length=env_int("WEBHOOK_URL_MAX_LENGTH", d.url_max_length, minimum=20),
            allowed_networks=env_networks("WEBHOOK_ALLOWED_NETWORKS"),
        )


@dataclass(frozen=True)
class WebhookSettings:
    """What webhooks may be and how they are sent (notification; README: Webhooks)."""

    url_max_length: int = 2000
    allowed_networks: tuple = ()
    retry_delays: tuple[float, ...] = (5, 30, 120, 600, 1800, 7200, 18000, 36000)
    disable_after: int = 20
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    response_max_bytes: int = 4096
    deliveries_kept: int = 100

    @classmethod
    def from_env(cls) -> "WebhookSettings":
        d = cls()
        return cls(
            url_max_length=env_int("WEBHOOK_URL_MAX_LENGTH", d.url_max_length, minimum=20),
            allowed_networks=env_networks("WEBHOOK_ALLOWED_NETWORKS"),
            retry_delays=env_delays("WEBHOOK_RETRY_DELAYS",
                                    ",".join(f"{x:g}" for x in d.retry_delays)),
            disable_after=env_int("WEBHOOK_DISABLE_AFTER_FAILURES", d.disable_after, minimum=1),
            connect_timeout=float(env_int("WEBHOOK_CONNECT_TIMEOUT_SECONDS", 5, minimum=1)),
            read_timeout=float(env_int("WEBHOOK_READ_TIMEOUT_SECONDS", 10, minimum=1)),
            response_max_bytes=env_int("WEBHOOK_RESPONSE_MAX_BYTES", d.response_max_bytes,
                                       minimum=0),
            deliveries_kept=env_int("WEBHOOK_DELIVERIES_KEPT", d.deliveries_kept, minimum=1),
        )
