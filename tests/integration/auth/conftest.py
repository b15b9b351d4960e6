"""auth app, test client and CLI runner against the real MariaDB test database."""

import secrets
import uuid
from dataclasses import replace

import MySQLdb
import pytest

from auth import create_app
from auth.config import AuthConfig
from common.settings import MySQLSettings, SmtpSettings
from tools.processes import free_port

PUBLIC_URL = "http://gw.example:8080"


def smtp_settings(host: str, port: int) -> SmtpSettings:
    """Plain SMTP to ``host:port``."""
    return SmtpSettings(host=host, port=port, starttls=False, username="", password="",
                        sender="mp3converter@localhost", timeout=5.0)


def auth_config(mysql_db: dict, smtp: SmtpSettings, **overrides) -> AuthConfig:
    """AuthConfig for the test database and mail server, with a fresh JWT secret."""
    values = dict(
        jwt_secret=secrets.token_urlsafe(32), jwt_ttl_seconds=3600,
        mysql=MySQLSettings(host=mysql_db["MYSQL_HOST"], port=int(mysql_db["MYSQL_PORT"]),
                            user=mysql_db["MYSQL_USER"], password=mysql_db["MYSQL_PASSWORD"],
                            db=mysql_db["MYSQL_DB"]),
        mysql_connect_timeout=3, log_level="WARNING",
        smtp=smtp, public_url=PUBLIC_URL, verify_ttl_seconds=3600, verify_resend_seconds=60)
    values.update(overrides)
    return AuthConfig(**values)


@pytest.fixture
def make_config(mysql_db, mailsink):
    """make_config(**overrides) -> AuthConfig for the test database and the SMTP sink."""
    smtp = smtp_settings(mailsink.host, mailsink.port)
    return lambda **overrides: auth_config(mysql_db, smtp, **overrides)


@pytest.fixture
def unreachable_config(make_config) -> AuthConfig:
    """The test config with nothing listening on MariaDB's port (given up on after 1 s)."""
    config = make_config(mysql_connect_timeout=1)
    return replace(config, mysql=replace(config.mysql, port=free_port()))


@pytest.fixture
def config(make_config) -> AuthConfig:
    """The app's settings."""
    return make_config()


class Runner:
    """Runs the app's click commands inside an app context, as `flask --app auth` does."""

    def __init__(self, app):
        self.app = app
        self._runner = app.test_cli_runner()

    def invoke(self, *args, **kwargs):
        """Invoke a command; returns click's Result."""
        with self.app.app_context():
            return self._runner.invoke(*args, **kwargs)


@pytest.fixture
def app(config):
    """The auth app with its schema created through `init-db`."""
    app = create_app({"AUTH": config, "TESTING": True})
    result = Runner(app).invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    return app


@pytest.fixture
def client(app):
    """HTTP test client."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """Click runner for `flask --app auth ...` commands."""
    return Runner(app)


@pytest.fixture
def email() -> str:
    """An address no other test uses."""
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
def users_table(mysql_db):
    """fetch(email) -> the users row (email, password_hash, is_admin, verified), from MySQL."""
    def fetch(address: str):
        conn = MySQLdb.connect(host=mysql_db["MYSQL_HOST"], port=int(mysql_db["MYSQL_PORT"]),
                               user=mysql_db["MYSQL_USER"], passwd=mysql_db["MYSQL_PASSWORD"],
                               db=mysql_db["MYSQL_DB"])
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT email, password_hash, is_admin, verified FROM users"
                            " WHERE email = %s", (address,))
                return cur.fetchone()
        finally:
            conn.close()

    return fetch
