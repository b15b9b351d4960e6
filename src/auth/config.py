"""The auth service's settings, read once from the environment."""

from dataclasses import dataclass

from common.settings import env_int, env_str


@dataclass(frozen=True)
class AuthConfig:
    """Everything auth reads from the environment."""

    jwt_secret: str
    jwt_ttl_seconds: int
    mysql_host: str
    mysql_port: int
    mysql_user: str
    mysql_password: str
    mysql_db: str
    mysql_connect_timeout: int
    log_level: str

    @classmethod
    def from_env(cls) -> "AuthConfig":
        """Read the variables; raises ConfigError when JWT_SECRET is missing."""
        return cls(
            jwt_secret=env_str("JWT_SECRET", required=True),
            jwt_ttl_seconds=env_int("JWT_TTL_SECONDS", 86400, minimum=1),
            mysql_host=env_str("MYSQL_HOST", "127.0.0.1"),
            mysql_port=env_int("MYSQL_PORT", 3306),
            mysql_user=env_str("MYSQL_USER", "auth_user"),
            mysql_password=env_str("MYSQL_PASSWORD", ""),
            mysql_db=env_str("MYSQL_DB", "auth"),
            mysql_connect_timeout=env_int("MYSQL_CONNECT_TIMEOUT_SECONDS", 3, minimum=1),
            log_level=env_str("LOG_LEVEL", "INFO"),
        )
