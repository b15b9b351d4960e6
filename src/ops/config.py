"""The operator commands' settings, read once from the environment."""

from dataclasses import dataclass

from common.settings import (
    LifecycleSettings,
    MessagingSettings,
    MongoSettings,
    MySQLSettings,
    env_int,
    env_str,
)


@dataclass(frozen=True)
class OpsConfig:
    """Everything the sweep and the dead-letter tools read from the environment."""

    mongo: MongoSettings
    messaging: MessagingSettings
    lifecycle: LifecycleSettings
    stuck_job_seconds: int
    unpublished_job_seconds: int
    orphan_grace_seconds: int
    sweep_lease_seconds: int
    usage_reconcile_owners: int
    auth_url: str
    auth_timeout: float
    log_level: str
    backup: "BackupSettings"

    @classmethod
    def from_env(cls) -> "OpsConfig":
        """Read the variables."""
        return cls(
            mongo=MongoSettings.from_env(),
            messaging=MessagingSettings.from_env(),
            lifecycle=LifecycleSettings.from_env(),
            stuck_job_seconds=env_int("STUCK_JOB_SECONDS", 3600, minimum=1),
            unpublished_job_seconds=env_int("UNPUBLISHED_JOB_SECONDS", 120, minimum=1),
            orphan_grace_seconds=env_int("ORPHAN_GRACE_SECONDS", 86400, minimum=0),
            # one sweep at a time: how long its lease lasts unless renewed (every third of it)
            sweep_lease_seconds=env_int("SWEEP_LEASE_SECONDS", 120, minimum=3),
            # owners whose usage one sweep checks against their jobs (ops.upkeep.reconcile_usage)
            usage_reconcile_owners=env_int("USAGE_RECONCILE_OWNERS", 200, minimum=1),
            auth_url=env_str("AUTH_URL", "http://127.0.0.1:5000").rstrip("/"),
            auth_timeout=float(env_int("AUTH_TIMEOUT_SECONDS", 5, minimum=1)),
            log_level=env_str("LOG_LEVEL", "INFO"),
            backup=BackupSettings.from_env(),
        )


@dataclass(frozen=True)
class BackupSettings:
    """Where backup sets go, how many are kept, and auth's MariaDB database they copy."""

    backup_dir: str  # required by `backup` only (the command says so when it is missing)
    keep: int
    release: str  # empty: `git describe`, else the installed package's version
    pushgateway_url: str  # empty: nothing is pushed
    mysql: MySQLSettings

    @classmethod
    def from_env(cls) -> "BackupSettings":
        """Read BACKUP_*, RELEASE, PUSHGATEWAY_URL and auth's MYSQL_* variables."""
        return cls(
            backup_dir=env_str("BACKUP_DIR", ""),
            keep=env_int("BACKUP_KEEP", 7, minimum=1),
            release=env_str("RELEASE", ""),
            pushgateway_url=env_str("PUSHGATEWAY_URL", ""),
            mysql=MySQLSettings.from_env(),
        )
