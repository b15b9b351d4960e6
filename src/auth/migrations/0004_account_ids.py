"""Account ids: every account gets an immutable random id; deleted accounts keep theirs."""

import uuid

from auth.migrations import DUPLICATE_KEY_NAME, add_columns, alter, columns, has_index

ACCOUNT_ID = "CHAR(32) CHARACTER SET ascii COLLATE ascii_bin"


def apply(cur) -> list[str]:
    """Add the columns, give every account without one an id, then make it required and
    unique."""
    notes = add_columns(cur, "users", {"account_id": f"{ACCOUNT_ID} NULL"})
    notes += add_columns(cur, "deleted_users", {"account_id": f"{ACCOUNT_ID} NULL"})
    cur.execute("SELECT id FROM users WHERE account_id IS NULL")
    missing = [row[0] for row in cur.fetchall()]
    for row_id in missing:
        cur.execute("UPDATE users SET account_id = %s WHERE id = %s AND account_id IS NULL",
                    (uuid.uuid4().hex, row_id))
    if missing:
        notes.append(f"gave {len(missing)} existing account(s) an id")
    if columns(cur, "users")["account_id"][0] == "YES":
        cur.execute(f"ALTER TABLE users MODIFY account_id {ACCOUNT_ID} NOT NULL")
    if not has_index(cur, "users", "users_account_id"):
        alter(cur, "ALTER TABLE users ADD UNIQUE KEY users_account_id (account_id)",
              DUPLICATE_KEY_NAME)
    return notes
