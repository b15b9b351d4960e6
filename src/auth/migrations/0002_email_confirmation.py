"""Confirmed addresses: whether the owner opened the link, when the last one was sent."""

from auth.migrations import add_columns


def apply(cur) -> list[str]:
    """Add the columns users lacks."""
    return add_columns(cur, "users", {
        "verified": "BOOLEAN NOT NULL DEFAULT FALSE",
        "verify_sent_at": "TIMESTAMP NULL DEFAULT NULL",
    })
