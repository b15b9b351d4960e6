"""auth's schema changes, one numbered module each, and the checks they share.

A migration is ``NNNN_name.py`` with ``apply(cur) -> list[str]`` (what it did, a line each;
lines starting ``WARNING`` are for the operator to act on). ``auth.schema`` applies those not
yet recorded, in order. MariaDB commits every DDL statement at once, so a migration can stop
half-way: each step checks whether it is done before doing it, and the whole migration is run
again until it is recorded. Never change a released migration; add the next number.
"""

import MySQLdb

DUPLICATE_COLUMN = 1060  # MySQL/MariaDB error: the column is there already
DUPLICATE_KEY_NAME = 1061


def columns(cur, table: str) -> dict[str, tuple[str, str | None]]:
    """{column: (IS_NULLABLE, COLLATION_NAME)} of ``table`` (empty when there is no table)."""
    cur.execute("SELECT COLUMN_NAME, IS_NULLABLE, COLLATION_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
    return {row[0].lower(): (row[1], row[2]) for row in cur.fetchall()}


def has_index(cur, table: str, name: str) -> bool:
    """Whether ``table`` has an index called ``name``."""
    cur.execute("SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()"
                " AND TABLE_NAME = %s AND INDEX_NAME = %s LIMIT 1", (table, name))
    return cur.fetchone() is not None


def alter(cur, statement: str, tolerated: int) -> None:
    """Run an ALTER TABLE whose effect may be there already (MySQL error ``tolerated``)."""
    try:
        cur.execute(statement)
    except MySQLdb.OperationalError as exc:
        if exc.args[0] != tolerated:
            raise


def add_columns(cur, table: str, definitions: dict[str, str]) -> list[str]:
    """Add the columns of ``definitions`` that ``table`` lacks; one note per column added."""
    present = columns(cur, table)
    notes = []
    for column, definition in definitions.items():
        if column not in present:
            alter(cur, f"ALTER TABLE {table} ADD COLUMN {column} {definition}", DUPLICATE_COLUMN)
            notes.append(f"added column {table}.{column}")
    return notes
