"""MySQL access for auth: one connection per request, schema and user commands."""

import sys

import click
import MySQLdb
from flask import current_app, g
from flask.cli import with_appcontext
from MySQLdb.constants import CLIENT

from auth import passwords

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    verify_sent_at TIMESTAMP NULL DEFAULT NULL,
    UNIQUE KEY users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""
# Accounts deleted in the last DELETED_KEPT_DAYS: the sweep removes their jobs and files.
DELETED_SCHEMA = """
CREATE TABLE IF NOT EXISTS deleted_users (
    email VARCHAR(254) NOT NULL,
    deleted_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY deleted_users_at (deleted_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""
DELETED_KEPT_DAYS = 30
# Columns added after the first release: init-db adds those an existing table lacks.
ADDED_COLUMNS = {
    "verified": "BOOLEAN NOT NULL DEFAULT FALSE",
    "verify_sent_at": "TIMESTAMP NULL DEFAULT NULL",
}
DUPLICATE_COLUMN = 1060  # MySQL/MariaDB error: another init-db added it meanwhile

# Raised when MySQL cannot be reached or drops the connection: answered with 503.
UNAVAILABLE = (MySQLdb.OperationalError, MySQLdb.InterfaceError)


class EmailTaken(Exception):
    """A user with that email already exists."""


def connect(config):
    """A new MySQL connection from the app config (rowcount counts matched rows)."""
    return MySQLdb.connect(
        host=config.mysql_host, port=config.mysql_port, user=config.mysql_user,
        password=config.mysql_password, database=config.mysql_db,
        connect_timeout=config.mysql_connect_timeout, charset="utf8mb4", autocommit=True,
        client_flag=CLIENT.FOUND_ROWS)


def get_db():
    """The request's connection, opened on first use."""
    if "db" not in g:
        g.db = connect(current_app.config["AUTH"])
    return g.db


def close_db(_exc=None) -> None:
    """Close the request's connection, if any."""
    conn = g.pop("db", None)
    if conn is not None:
        try:
            conn.close()
        except UNAVAILABLE:
            pass


def find_user(email: str):
    """(email, password_hash, is_admin, verified) for ``email``, or None."""
    with get_db().cursor() as cur:
        cur.execute("SELECT email, password_hash, is_admin, verified FROM users WHERE email = %s",
                    (email,))
        return cur.fetchone()


def insert_user(email: str, password: str, admin: bool = False, verified: bool = False) -> None:
    """Create a user; an unverified one is recorded as just sent its verification email.

    Raises EmailTaken when the email exists.
    """
    try:
        with get_db().cursor() as cur:
            cur.execute(
                "INSERT INTO users (email, password_hash, is_admin, verified, verify_sent_at) "
                "VALUES (%s, %s, %s, %s, IF(%s, NULL, CURRENT_TIMESTAMP))",
                (email, passwords.hash_password(password), admin, verified, verified))
    except MySQLdb.IntegrityError:
        raise EmailTaken(email) from None


def account(email: str):
    """(created_at as epoch seconds, is_admin, verified) of ``email``, or None."""
    with get_db().cursor() as cur:
        cur.execute("SELECT UNIX_TIMESTAMP(created_at), is_admin, verified FROM users "
                    "WHERE email = %s", (email,))
        row = cur.fetchone()
    return None if row is None else (int(row[0]), bool(row[1]), bool(row[2]))


def delete_user(email: str) -> bool:
    """Remove the account and remember it was deleted (its files go with the next sweep, if
    not before); False when there is no such user."""
    conn = get_db()
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION")
        try:
            cur.execute("DELETE FROM users WHERE email = %s", (email,))
            deleted = cur.rowcount == 1
            if deleted:
                cur.execute("INSERT INTO deleted_users (email) VALUES (%s)", (email,))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    return deleted


def deleted_users() -> list[dict]:
    """Accounts deleted in the last DELETED_KEPT_DAYS: email, deleted_at and, when the address
    has registered again since, registered_again_at (epoch seconds). Older entries are pruned."""
    with get_db().cursor() as cur:
        cur.execute("DELETE FROM deleted_users WHERE deleted_at < "
                    "CURRENT_TIMESTAMP - INTERVAL %s DAY", (DELETED_KEPT_DAYS,))
        cur.execute("SELECT d.email, UNIX_TIMESTAMP(MAX(d.deleted_at)), "
                    "UNIX_TIMESTAMP(MAX(u.created_at)) FROM deleted_users d "
                    "LEFT JOIN users u ON u.email = d.email GROUP BY d.email")
        rows = cur.fetchall()
    return [{"email": row[0], "deleted_at": int(row[1]),
             "registered_again_at": int(row[2]) if row[2] is not None else None}
            for row in rows]


def delete_unverified(email: str) -> None:
    """Remove an account whose verification email could not be sent, so it can register again."""
    with get_db().cursor() as cur:
        cur.execute("DELETE FROM users WHERE email = %s AND NOT verified", (email,))


def mark_verified(email: str) -> bool:
    """Record that the owner of ``email`` confirmed it; False when there is no such user."""
    with get_db().cursor() as cur:
        cur.execute("UPDATE users SET verified = TRUE WHERE email = %s", (email,))
        return cur.rowcount == 1


def is_verified(email: str) -> bool | None:
    """Whether ``email`` is confirmed; None when there is no such user."""
    with get_db().cursor() as cur:
        cur.execute("SELECT verified FROM users WHERE email = %s", (email,))
        row = cur.fetchone()
    return None if row is None else bool(row[0])


def claim_resend(email: str, cooldown_seconds: int) -> int | None:
    """Record a new verification email for ``email`` unless one went out within the cooldown.

    Returns None when the caller may send it now, else the seconds left to wait (0 when the
    address is already verified or unknown: check ``is_verified``).
    """
    with get_db().cursor() as cur:
        cur.execute(
            "UPDATE users SET verify_sent_at = CURRENT_TIMESTAMP WHERE email = %s AND NOT verified"
            " AND (verify_sent_at IS NULL"
            "      OR verify_sent_at <= CURRENT_TIMESTAMP - INTERVAL %s SECOND)",
            (email, cooldown_seconds))
        if cur.rowcount == 1:
            return None
        cur.execute(
            "SELECT GREATEST(1, TIMESTAMPDIFF(SECOND, CURRENT_TIMESTAMP,"
            "                                 verify_sent_at + INTERVAL %s SECOND))"
            " FROM users WHERE email = %s AND NOT verified AND verify_sent_at IS NOT NULL",
            (cooldown_seconds, email))
        row = cur.fetchone()
    return int(row[0]) if row else 0


def release_resend(email: str) -> None:
    """Forget the last verification email of ``email``: it could not be sent."""
    with get_db().cursor() as cur:
        cur.execute("UPDATE users SET verify_sent_at = NULL WHERE email = %s", (email,))


def ping() -> None:
    """Raise when MySQL is unreachable."""
    with get_db().cursor() as cur:
        cur.execute("SELECT 1")


def migrate(cur) -> list[str]:
    """Add the columns an older users table lacks; returns their names."""
    cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users'")
    present = {row[0].lower() for row in cur.fetchall()}
    added = []
    for column, definition in ADDED_COLUMNS.items():
        if column in present:
            continue
        try:
            cur.execute(f"ALTER TABLE users ADD COLUMN {column} {definition}")
        except MySQLdb.OperationalError as exc:
            if exc.args[0] != DUPLICATE_COLUMN:
                raise
        added.append(column)
    return added


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the tables if they do not exist, and add any missing column."""
    with get_db().cursor() as cur:
        cur.execute(SCHEMA)
        cur.execute(DELETED_SCHEMA)
        added = migrate(cur)
    if added:
        click.echo(f"added column(s) to users: {', '.join(added)}")
    click.echo("users table ready")


@click.command("create-user")
@with_appcontext
@click.argument("email")
@click.option("--admin", is_flag=True, help="Give the user admin rights.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user_command(email: str, admin: bool, password_stdin: bool):
    """Create a user; the password is prompted for unless --password-stdin is given."""
    from auth.validation import ValidationFailed, check_credentials

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        email = check_credentials(email, password)
        insert_user(email, password, admin, verified=True)
    except ValidationFailed as exc:
        raise click.ClickException(str(exc)) from None
    except EmailTaken:
        raise click.ClickException(f"user {email} already exists") from None
    click.echo(f"created user {email}" + (" (admin)" if admin else ""))


@click.command("verify-user")
@with_appcontext
@click.argument("email")
def verify_user_command(email: str):
    """Mark EMAIL as confirmed by its owner, as following the emailed link does."""
    email = email.strip().lower()
    if not mark_verified(email):
        raise click.ClickException(f"no user {email}")
    click.echo(f"verified user {email}")


@click.command("delete-user")
@with_appcontext
@click.argument("email")
def delete_user_command(email: str):
    """Delete the account EMAIL; its tokens stop working, its jobs and files go at the sweep."""
    email = email.strip().lower()
    if not delete_user(email):
        raise click.ClickException(f"no user {email}")
    click.echo(f"deleted user {email}; its jobs and files are removed by the next sweep "
               "(python -m ops sweep)")


def init_app(app) -> None:
    """Register teardown and click commands."""
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)
    app.cli.add_command(create_user_command)
    app.cli.add_command(verify_user_command)
    app.cli.add_command(delete_user_command)
