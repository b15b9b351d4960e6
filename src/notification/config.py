"""The notification service's settings, read once from the environment."""

from dataclasses import dataclass

from common.settings import (
    ConsumerSettings,
    MessagingSettings,
    MongoSettings,
    env_bool,
    env_float,
    env_int,
    env_str,
)


@dataclass(frozen=True)
class NotificationConfig:
    """Everything notification reads from the environment."""

    smtp_host: str
    smtp_port: int
    smtp_starttls: bool
    smtp_username: str
    smtp_password: str
    smtp_from: str
    smtp_timeout: float
    public_url: str
    mongo: MongoSettings
    messaging: MessagingSettings
    consumer: ConsumerSettings
    log_level: str

    @classmethod
    def from_env(cls) -> "NotificationConfig":
        """Read the variables."""
        return cls(
            smtp_host=env_str("SMTP_HOST", "127.0.0.1"),
            smtp_port=env_int("SMTP_PORT", 1025),
            smtp_starttls=env_bool("SMTP_STARTTLS", False),
            smtp_username=env_str("SMTP_USERNAME", ""),
            smtp_password=env_str("SMTP_PASSWORD", ""),
            smtp_from=env_str("SMTP_FROM", "mp3converter@localhost"),
            smtp_timeout=env_float("SMTP_TIMEOUT_SECONDS", 10.0),
            public_url=env_str("PUBLIC_URL", "http://127.0.0.1:8080").rstrip("/"),
            mongo=MongoSettings.from_env(),
            messaging=MessagingSettings.from_env(),
            consumer=ConsumerSettings.from_env("notification", default_grace=60.0),
            log_level=env_str("LOG_LEVEL", "INFO"),
        )
