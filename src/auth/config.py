"""The auth service's settings, read once from the environment."""

from dataclasses import dataclass

from auth.apikeys import KeySettings
from auth.passwords import DEFAULT_MAX_CONCURRENT, DEFAULT_QUEUE_SECONDS
from common.settings import (
    ConfigError,
    MetricsSettings,
    MySQLSettings,
    SmtpSettings,
    env_float,
    env_int,
    env_secret,
    env_str,
)


@dataclass(frozen=True)
class AuthConfig:
    """Everything auth reads from the environment."""

    jwt_secret: str
    jwt_ttl_seconds: int
    mysql: MySQLSettings
    mysql_connect_timeout: int
    log_level: str
    smtp: SmtpSettings
    public_url: str
    verify_ttl_seconds: int
    verify_resend_seconds: int
    argon2_max_concurrent: int = DEFAULT_MAX_CONCURRENT
    argon2_queue_seconds: float = DEFAULT_QUEUE_SECONDS
    metrics: MetricsSettings = MetricsSettings()
    api_keys: KeySettings = KeySettings()

    @classmethod
    def from_env(cls) -> "AuthConfig":
        """Read the variables; raises ConfigError when JWT_SECRET is missing or weak."""
        return cls(
            jwt_secret=env_secret("JWT_SECRET"),
            jwt_ttl_seconds=env_int("JWT_TTL_SECONDS", 86400, minimum=1),
            mysql=MySQLSettings.from_env(),
            mysql_connect_timeout=env_int("MYSQL_CONNECT_TIMEOUT_SECONDS", 3, minimum=1),
            log_level=env_str("LOG_LEVEL", "INFO"),
            smtp=SmtpSettings.from_env(),
            public_url=env_str("PUBLIC_URL", "http://127.0.0.1:8080").rstrip("/"),
            verify_ttl_seconds=env_int("VERIFY_TOKEN_TTL_SECONDS", 48 * 3600, minimum=1),
            verify_resend_seconds=env_int("VERIFY_RESEND_SECONDS", 300, minimum=0),
            argon2_max_concurrent=env_int("ARGON2_MAX_CONCURRENT", DEFAULT_MAX_CONCURRENT,
                                          minimum=1),
            argon2_queue_seconds=_queue_seconds(),
            metrics=MetricsSettings.from_env(),
            api_keys=_key_settings(),
        )


def _key_settings() -> KeySettings:
    defaults = KeySettings()
    return KeySettings(
        per_account=env_int("API_KEYS_PER_ACCOUNT", defaults.per_account, minimum=1),
        name_max_length=_at_most(env_int("API_KEY_NAME_MAX_LENGTH", defaults.name_max_length,
                                         minimum=1), "API_KEY_NAME_MAX_LENGTH", 200),
        max_days=_at_most(env_int("API_KEY_MAX_DAYS", defaults.max_days, minimum=1),
                          "API_KEY_MAX_DAYS", 3650),
    )


def _at_most(value: int, name: str, maximum: int) -> int:
    if value > maximum:
        raise ConfigError(f"environment variable {name} must be <= {maximum}, got {value}")
    return value


def _queue_seconds() -> float:
    value = env_float("ARGON2_QUEUE_SECONDS", DEFAULT_QUEUE_SECONDS)
    if value < 0:
        raise ConfigError(f"environment variable ARGON2_QUEUE_SECONDS must be >= 0, got {value}")
    return value
