"""The gateway's settings, read once from the environment."""

from collections.abc import Mapping
from dataclasses import dataclass

from limits import parse_many

from common.settings import (
    ConfigError,
    LifecycleSettings,
    MessagingSettings,
    MetricsSettings,
    MongoSettings,
    WebhookLimits,
    env_int,
    env_secret,
    env_str,
)


def env_rate_limit(name: str, default: str) -> str:
    """A rate limit such as "10 per minute" (several: "10 per minute; 100 per day")."""
    value = env_str(name, default).strip()
    try:
        items = parse_many(value)
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        raise ConfigError(f"environment variable {name} must be a rate limit such as "
                          f"'10 per minute' or '5 per hour', got {value!r}")
    return value


@dataclass(frozen=True)
class RateLimits:
    """How often one client may try to log in, register, upload and register or test a
    webhook (shared by all replicas)."""

    login_per_account: str = "10 per minute"
    login_per_address: str = "30 per minute"
    register_per_address: str = "5 per hour"
    upload_per_user: str = "60 per hour"
    # webhook registrations and test sends (each test send is a request to the endpoint)
    webhook_per_user: str = "30 per hour"

    @classmethod
    def from_env(cls) -> "RateLimits":
        """Read the *_RATE_LIMIT_* variables."""
        defaults = cls()
        return cls(
            login_per_account=env_rate_limit("LOGIN_RATE_LIMIT_PER_ACCOUNT",
                                             defaults.login_per_account),
            login_per_address=env_rate_limit("LOGIN_RATE_LIMIT_PER_ADDRESS",
                                             defaults.login_per_address),
            register_per_address=env_rate_limit("REGISTER_RATE_LIMIT_PER_ADDRESS",
                                                defaults.register_per_address),
            upload_per_user=env_rate_limit("UPLOAD_RATE_LIMIT_PER_USER",
                                           defaults.upload_per_user),
            webhook_per_user=env_rate_limit("WEBHOOK_RATE_LIMIT_PER_USER",
                                            defaults.webhook_per_user),
        )


@dataclass(frozen=True)
class Limits:
    """What one user may have waiting or converting and stored (``GatewayConfig.limits_for``)."""

    storage_quota_bytes: int
    max_active_jobs: int
    # an unconfirmed address's: the limits confirming it gives (None: confirmed, or no higher)
    once_verified: "Limits | None" = None


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway reads from the environment."""

    auth_url: str
    auth_timeout: float
    max_upload_bytes: int
    download_url_secret: str
    download_url_ttl: int
    mongo: MongoSettings
    messaging: MessagingSettings
    log_level: str
    broker_pool_size: int = 4
    rate_limits: RateLimits = RateLimits()
    trusted_proxy_count: int = 0  # proxies whose X-Forwarded-For entry is believed
    lifecycle: LifecycleSettings = LifecycleSettings()
    storage_quota_bytes: int = 5 * 1024**3  # videos waiting or converting plus MP3s kept
    max_active_jobs: int = 10  # queued or converting, per user
    metrics: MetricsSettings = MetricsSettings()
    # the same for a user who has not confirmed their address yet (never above the others)
    unverified_storage_quota_bytes: int = 200 * 1024**2
    unverified_max_active_jobs: int = 2
    webhooks: WebhookLimits = WebhookLimits()
    # an unfinished resumable upload (tus) is kept, and counted in its owner's quota, this long
    resumable_upload_expiry_hours: int = 24

    def limits_for(self, claims: Mapping) -> Limits:
        """The limits of the user whose token has these ``claims`` (auth's /validate): the
        smaller ones until their address is confirmed (``verified``)."""
        verified = Limits(self.storage_quota_bytes, self.max_active_jobs)
        if claims.get("verified"):
            return verified
        limits = Limits(min(self.unverified_storage_quota_bytes, self.storage_quota_bytes),
                        min(self.unverified_max_active_jobs, self.max_active_jobs))
        if limits == verified:
            return limits
        return Limits(limits.storage_quota_bytes, limits.max_active_jobs, once_verified=verified)

    @classmethod
    def from_env(cls) -> "GatewayConfig":
        """Read the variables; raises ConfigError when DOWNLOAD_URL_SECRET is missing or weak."""
        return cls(
            auth_url=env_str("AUTH_URL", "http://127.0.0.1:5000").rstrip("/"),
            auth_timeout=float(env_int("AUTH_TIMEOUT_SECONDS", 5, minimum=1)),
            max_upload_bytes=env_int("MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1),
            download_url_secret=env_secret("DOWNLOAD_URL_SECRET"),
            download_url_ttl=env_int("DOWNLOAD_URL_TTL_SECONDS", 900, minimum=1),
            mongo=MongoSettings.from_env(),
            messaging=MessagingSettings.from_env(),
            log_level=env_str("LOG_LEVEL", "INFO"),
            broker_pool_size=env_int("BROKER_POOL_SIZE", 4, minimum=1),
            rate_limits=RateLimits.from_env(),
            trusted_proxy_count=env_int("TRUSTED_PROXY_COUNT", 0, minimum=0),
            lifecycle=LifecycleSettings.from_env(),
            storage_quota_bytes=env_int("USER_STORAGE_QUOTA_BYTES", 5 * 1024**3, minimum=1),
            max_active_jobs=env_int("USER_MAX_ACTIVE_JOBS", 10, minimum=1),
            metrics=MetricsSettings.from_env(),
            unverified_storage_quota_bytes=env_int("UNVERIFIED_STORAGE_QUOTA_BYTES",
                                                   200 * 1024**2, minimum=1),
            unverified_max_active_jobs=env_int("UNVERIFIED_MAX_ACTIVE_JOBS", 2, minimum=1),
            webhooks=WebhookLimits.from_env(),
            resumable_upload_expiry_hours=env_int("RESUMABLE_UPLOAD_EXPIRY_HOURS", 24,
                                                  minimum=1),
        )
