"""MySQL access for auth: one connection per request, user commands (the schema:
``auth.schema``).

An account is its ``account_id``: a random id given at registration and never reused, which
login tokens, verification links, jobs' owner, quotas and rate limits carry. Its address is kept
in the canonical form of ``common.addresses`` and compared byte for byte (``utf8mb4_bin``).
"""

import re
import sys
import uuid

import click
import MySQLdb
import MySQLdb.cursors
from flask import current_app, g
from flask.cli import with_appcontext
from MySQLdb.constants import CLIENT

from auth import passwords

# Accounts deleted in the last DELETED_KEPT_DAYS: the sweep removes their jobs and files.
DELETED_KEPT_DAYS = 30
USER_COLUMNS = ("account_id, email, password_hash, is_admin, verified, "
                "UNIX_TIMESTAMP(created_at) AS created_at")

# Raised when MySQL cannot be reached or drops the connection: answered with 503.
UNAVAILABLE = (MySQLdb.OperationalError, MySQLdb.InterfaceError)


class EmailTaken(Exception):
    """A user with that email already exists."""


ACCOUNT_ID = re.compile(r"[0-9a-f]{32}")


def new_account_id() -> str:
    """A fresh account id: 128 random bits, never given twice."""
    return uuid.uuid4().hex


def connect(config):
    """A new MySQL connection from the app config (rowcount counts matched rows)."""
    return MySQLdb.connect(
        host=config.mysql.host, port=config.mysql.port, user=config.mysql.user,
        password=config.mysql.password, database=config.mysql.db,
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


def _cursor():
    """A cursor on the request's connection whose rows are dicts keyed by column name."""
    return get_db().cursor(MySQLdb.cursors.DictCursor)


def _one(query: str, args: tuple) -> dict | None:
    with _cursor() as cur:
        cur.execute(query, args)
        row = cur.fetchone()
    if row is None:
        return None
    return {**row, "is_admin": bool(row["is_admin"]), "verified": bool(row["verified"]),
            "created_at": int(row["created_at"])}


def find_user(email: str) -> dict | None:
    """The account whose canonical address is ``email`` (``account_id, email, password_hash,
    is_admin, verified, created_at``), or None."""
    return _one(f"SELECT {USER_COLUMNS} FROM users WHERE email = %s", (email,))


def find_account(account_id) -> dict | None:
    """The account with this id (the fields of ``find_user``), or None (also for anything
    that is not an account id)."""
    if not (isinstance(account_id, str) and ACCOUNT_ID.fullmatch(account_id)):
        return None
    return _one(f"SELECT {USER_COLUMNS} FROM users WHERE account_id = %s", (account_id,))


def insert_user(email: str, password: str, admin: bool = False, verified: bool = False) -> str:
    """Create an account for the canonical address ``email``; returns its new id. An
    unverified one is recorded as just sent its verification email.

    Raises EmailTaken when the address has an account.
    """
    account_id = new_account_id()
    try:
        with _cursor() as cur:
            cur.execute(
                "INSERT INTO users (account_id, email, password_hash, is_admin, verified, "
                "verify_sent_at) VALUES (%s, %s, %s, %s, %s, IF(%s, NULL, CURRENT_TIMESTAMP))",
                (account_id, email, passwords.hash_password(password), admin, verified,
                 verified))
    except MySQLdb.IntegrityError:
        raise EmailTaken(email) from None
    return account_id


def delete_user(account_id: str) -> bool:
    """Remove the account and its API keys and remember it was deleted (its files go with the
    next sweep, if not before); False when there is no such account."""
    with _cursor() as cur:
        cur.execute("START TRANSACTION")
        try:
            cur.execute("INSERT INTO deleted_users (account_id, email) "
                        "SELECT account_id, email FROM users WHERE account_id = %s",
                        (account_id,))
            cur.execute("DELETE FROM users WHERE account_id = %s", (account_id,))
            deleted = cur.rowcount == 1
            cur.execute("DELETE FROM api_keys WHERE account_id = %s", (account_id,))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    return deleted


def deleted_users() -> list[dict]:
    """Accounts deleted in the last DELETED_KEPT_DAYS: account_id, email, deleted_at (epoch
    seconds). Entries from before accounts had ids carry ``account_id`` None and, when the
    address has registered again since, registered_again_at. Older entries are pruned."""
    with _cursor() as cur:
        cur.execute("DELETE FROM deleted_users WHERE deleted_at < "
                    "CURRENT_TIMESTAMP - INTERVAL %s DAY", (DELETED_KEPT_DAYS,))
        cur.execute("SELECT d.account_id, d.email, "
                    "UNIX_TIMESTAMP(MAX(d.deleted_at)) AS deleted_at, "
                    "UNIX_TIMESTAMP(MAX(u.created_at)) AS registered_again_at FROM deleted_users d "
                    "LEFT JOIN users u ON d.account_id IS NULL AND u.email = d.email "
                    "GROUP BY d.account_id, d.email")
        rows = cur.fetchall()
    return [{**row, "deleted_at": int(row["deleted_at"]),
             "registered_again_at": (int(row["registered_again_at"])
                                     if row["registered_again_at"] is not None else None)}
            for row in rows]


def delete_unverified(account_id: str) -> None:
    """Remove an account whose verification email could not be sent, so it can register again."""
    with _cursor() as cur:
        cur.execute("DELETE FROM users WHERE account_id = %s AND NOT verified", (account_id,))


def mark_verified(account_id: str, email: str) -> bool:
    """Record that the owner of ``email`` confirmed it for this account; False when the account
    is gone or no longer has that address (the link is void)."""
    with _cursor() as cur:
        cur.execute("UPDATE users SET verified = TRUE WHERE account_id = %s AND email = %s",
                    (account_id, email))
        return cur.rowcount == 1


def claim_resend(account_id: str, cooldown_seconds: int) -> int | None:
    """Record a new verification email for the account unless one went out within the
    cooldown.

    Returns None when the caller may send it now, else the seconds left to wait (0 when the
    account is already verified or unknown: check ``find_account``).
    """
    with _cursor() as cur:
        cur.execute(
            "UPDATE users SET verify_sent_at = CURRENT_TIMESTAMP WHERE account_id = %s"
            " AND NOT verified AND (verify_sent_at IS NULL"
            "      OR verify_sent_at <= CURRENT_TIMESTAMP - INTERVAL %s SECOND)",
            (account_id, cooldown_seconds))
        if cur.rowcount == 1:
            return None
        cur.execute(
            "SELECT GREATEST(1, TIMESTAMPDIFF(SECOND, CURRENT_TIMESTAMP,"
            "                                 verify_sent_at + INTERVAL %s SECOND)) AS wait"
            " FROM users WHERE account_id = %s AND NOT verified AND verify_sent_at IS NOT NULL",
            (cooldown_seconds, account_id))
        row = cur.fetchone()
    return int(row["wait"]) if row else 0


def release_resend(account_id: str) -> None:
    """Forget the account's last verification email: it could not be sent."""
    with _cursor() as cur:
        cur.execute("UPDATE users SET verify_sent_at = NULL WHERE account_id = %s",
                    (account_id,))


def ping() -> None:
    """Raise when MySQL is unreachable."""
    with _cursor() as cur:
        cur.execute("SELECT 1")


def _canonical_or_exit(email: str) -> str:
    from common.addresses import InvalidAddress, canonical

    try:
        return canonical(email)
    except InvalidAddress as exc:
        raise click.ClickException(str(exc)) from None


def _account_or_exit(who: str) -> dict:
    """The account named by an address or an account id, or a ClickException."""
    account = find_user(_canonical_or_exit(who)) if "@" in who else find_account(who)
    if account is None:
        raise click.ClickException(f"no user {who}")
    return account


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
        account_id = insert_user(email, password, admin, verified=True)
    except ValidationFailed as exc:
        raise click.ClickException(str(exc)) from None
    except EmailTaken:
        raise click.ClickException(f"user {email} already exists") from None
    click.echo(f"created user {email} (account {account_id})" + (" (admin)" if admin else ""))


@click.command("verify-user")
@with_appcontext
@click.argument("who")
def verify_user_command(who: str):
    """Mark the account (an address or an account id) as confirmed by its owner, as following
    the emailed link does."""
    account = _account_or_exit(who)
    mark_verified(account["account_id"], account["email"])
    click.echo(f"verified user {account['email']}")


@click.command("delete-user")
@with_appcontext
@click.argument("who")
def delete_user_command(who: str):
    """Delete the account (an address or an account id); its tokens stop working, its jobs and
    files go at the sweep."""
    account = _account_or_exit(who)
    delete_user(account["account_id"])
    click.echo(f"deleted user {account['email']} (account {account['account_id']}); its jobs "
               "and files are removed by the next sweep (python -m ops sweep)")


def init_app(app) -> None:
    """Register teardown and click commands."""
    from auth import schema

    app.teardown_appcontext(close_db)
    schema.init_app(app)
    app.cli.add_command(create_user_command)
    app.cli.add_command(verify_user_command)
    app.cli.add_command(delete_user_command)
