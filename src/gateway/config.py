"""The gateway's settings, read once from the environment."""

from dataclasses import dataclass

from common.settings import MessagingSettings, MongoSettings, env_int, env_str


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway reads from the environment."""

    auth_url: str
    auth_timeout: float
    max_upload_bytes: int
    download_url_secret: str
    download_url_ttl: int
    stuck_job_seconds: int
    unpublished_job_seconds: int
    mongo: MongoSettings
    messaging: MessagingSettings
    log_level: str

    @classmethod
    def from_env(cls) -> "GatewayConfig":
        """Read the variables; raises ConfigError when DOWNLOAD_URL_SECRET is missing."""
        return cls(
            auth_url=env_str("AUTH_URL", "http://127.0.0.1:5000").rstrip("/"),
            auth_timeout=float(env_int("AUTH_TIMEOUT_SECONDS", 5, minimum=1)),
            max_upload_bytes=env_int("MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1),
            download_url_secret=env_str("DOWNLOAD_URL_SECRET", required=True),
            download_url_ttl=env_int("DOWNLOAD_URL_TTL_SECONDS", 900, minimum=1),
            stuck_job_seconds=env_int("STUCK_JOB_SECONDS", 3600, minimum=1),
            unpublished_job_seconds=env_int("UNPUBLISHED_JOB_SECONDS", 120, minimum=1),
            mongo=MongoSettings.from_env(),
            messaging=MessagingSettings.from_env(),
            log_level=env_str("LOG_LEVEL", "INFO"),
        )
