"""The notification service's settings, read once from the environment."""

from dataclasses import dataclass

from common.settings import (
    ConsumerSettings,
    MessagingSettings,
    MetricsSettings,
    MongoSettings,
    SmtpSettings,
    env_int,
    env_str,
)


@dataclass(frozen=True)
class NotificationConfig:
    """Everything notification reads from the environment."""

    smtp: SmtpSettings
    public_url: str
    auth_url: str
    auth_timeout: float
    mongo: MongoSettings
    messaging: MessagingSettings
    consumer: ConsumerSettings
    log_level: str
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def from_env(cls) -> "NotificationConfig":
        """Read the variables."""
        return cls(
            smtp=SmtpSettings.from_env(),
            public_url=env_str("PUBLIC_URL", "http://127.0.0.1:8080").rstrip("/"),
            auth_url=env_str("AUTH_URL", "http://127.0.0.1:5000").rstrip("/"),
            auth_timeout=float(env_int("AUTH_TIMEOUT_SECONDS", 5, minimum=1)),
            mongo=MongoSettings.from_env(),
            messaging=MessagingSettings.from_env(),
            consumer=ConsumerSettings.from_env("notification", default_grace=60.0),
            log_level=env_str("LOG_LEVEL", "INFO"),
            metrics=MetricsSettings.from_env(),
        )
