"""Deleted accounts, kept for the sweep to remove their jobs and files."""


def apply(cur) -> list[str]:
    """Create the table unless it exists."""
    cur.execute("""
CREATE TABLE IF NOT EXISTS deleted_users (
    email VARCHAR(254) NOT NULL,
    deleted_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY deleted_users_at (deleted_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
""")
    return []
