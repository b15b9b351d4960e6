"""The notification service's settings, read once from the environment."""

from dataclasses import dataclass

from common.settings import (
    ConsumerSettings,
    MessagingSettings,
    MetricsSettings,
    MongoSettings,
    SmtpSettings,
    WebhookSettings,
    env_int,
    env_secret,
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
    # webhooks: how they are sent, and the signed download links their job.done events carry
    webhooks: WebhookSettings = WebhookSettings()
    download_url_secret: str = ""
    download_url_ttl: int = 900

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
            webhooks=WebhookSettings.from_env(),
            download_url_secret=env_secret("DOWNLOAD_URL_SECRET"),
            download_url_ttl=env_int("DOWNLOAD_URL_TTL_SECONDS", 900, minimum=1),
        )
