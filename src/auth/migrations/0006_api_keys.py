"""API keys: named secrets with scopes for scripts, stored only as their SHA-256
(``auth.apikeys``); an account's keys go when the account does."""


def apply(cur) -> list[str]:
    """Create the table unless it exists."""
    cur.execute("""
CREATE TABLE IF NOT EXISTS api_keys (
    id CHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    account_id CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    scopes VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    secret_sha256 BINARY(32) NOT NULL,
    created_at BIGINT UNSIGNED NOT NULL,
    last_used_at BIGINT UNSIGNED NULL DEFAULT NULL,
    expires_at BIGINT UNSIGNED NULL DEFAULT NULL,
    UNIQUE KEY api_keys_secret (secret_sha256),
    KEY api_keys_account (account_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
""")
    return []
