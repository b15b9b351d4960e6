"""MySQL access for auth: one connection per request, schema and user commands."""

import sys

import click
import MySQLdb
from flask import current_app, g
from flask.cli import with_appcontext

from auth import passwords

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""

# Raised when MySQL cannot be reached or drops the connection: answered with 503.
UNAVAILABLE = (MySQLdb.OperationalError, MySQLdb.InterfaceError)


class EmailTaken(Exception):
    """A user with that email already exists."""


def connect(config):
    """A new MySQL connection from the app config."""
    return MySQLdb.connect(
        host=config.mysql_host, port=config.mysql_port, user=config.mysql_user,
        password=config.mysql_password, database=config.mysql_db,
        connect_timeout=config.mysql_connect_timeout, charset="utf8mb4", autocommit=True)


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
    """(email, password_hash, is_admin) for ``email``, or None."""
    with get_db().cursor() as cur:
        cur.execute("SELECT email, password_hash, is_admin FROM users WHERE email = %s", (email,))
        return cur.fetchone()


def insert_user(email: str, password: str, admin: bool = False) -> None:
    """Create a user; raises EmailTaken when the email exists."""
    try:
        with get_db().cursor() as cur:
            cur.execute("INSERT INTO users (email, password_hash, is_admin) VALUES (%s, %s, %s)",
                        (email, passwords.hash_password(password), admin))
    except MySQLdb.IntegrityError:
        raise EmailTaken(email) from None


def ping() -> None:
    """Raise when MySQL is unreachable."""
    with get_db().cursor() as cur:
        cur.execute("SELECT 1")


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the users table if it does not exist."""
    with get_db().cursor() as cur:
        cur.execute(SCHEMA)
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
        insert_user(email, password, admin)
    except ValidationFailed as exc:
        raise click.ClickException(str(exc)) from None
    except EmailTaken:
        raise click.ClickException(f"user {email} already exists") from None
    click.echo(f"created user {email}" + (" (admin)" if admin else ""))


def init_app(app) -> None:
    """Register teardown and click commands."""
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)
    app.cli.add_command(create_user_command)
