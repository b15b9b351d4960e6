"""auth's operator commands and how it behaves without its settings or its database."""

import os
import subprocess
from base64 import b64encode

import jwt
import pytest

from auth import create_app
from tools.devstack import BIN, process_env
from tools.processes import ROOT

pytestmark = pytest.mark.integration


def _login(client, email, password):
    raw = b64encode(f"{email}:{password}".encode()).decode()
    return client.post("/login", headers={"Authorization": f"Basic {raw}"})


def test_create_user_reads_the_password_from_stdin(runner, client, email, config, users_table):
    result = runner.invoke(args=["create-user", email, "--password-stdin"],
                           input="from stdin 123\n")
    assert result.exit_code == 0, result.output
    assert f"created user {email}" in result.output
    assert users_table(email)[1].startswith("$argon2id$")
    resp = _login(client, email, "from stdin 123")
    assert resp.status_code == 200
    claims = jwt.decode(resp.get_data(as_text=True), config.jwt_secret, algorithms=["HS256"])
    assert claims["admin"] is False


def test_create_user_admin_gets_an_admin_claim(runner, client, email, config):
    result = runner.invoke(args=["create-user", email, "--admin", "--password-stdin"],
                           input="admin password\n")
    assert result.exit_code == 0, result.output
    assert "(admin)" in result.output
    token = _login(client, email, "admin password").get_data(as_text=True)
    resp = client.post("/validate", headers={"Authorization": f"Bearer {token}"})
    assert resp.get_json()["admin"] is True


def test_create_user_prompts_twice_without_stdin_flag(runner, client, email):
    result = runner.invoke(args=["create-user", email], input="prompted pw\nprompted pw\n")
    assert result.exit_code == 0, result.output
    assert _login(client, email, "prompted pw").status_code == 200


def test_duplicate_create_user_fails_clearly(runner, email):
    first = runner.invoke(args=["create-user", email, "--password-stdin"], input="password1\n")
    assert first.exit_code == 0, first.output
    again = runner.invoke(args=["create-user", email.upper(), "--password-stdin"],
                          input="password2\n")
    assert again.exit_code != 0
    assert f"user {email} already exists" in again.output
    assert "Traceback" not in again.output


def test_create_user_rejects_a_short_password(runner, email, users_table):
    result = runner.invoke(args=["create-user", email, "--password-stdin"], input="short\n")
    assert result.exit_code != 0
    assert "at least 8" in result.output
    assert users_table(email) is None


def test_init_db_is_idempotent_and_keeps_users(runner, client, email):
    assert client.post("/register", json={"email": email, "password": "keep me please"}
                       ).status_code == 201
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert "users table ready" in result.output
    assert _login(client, email, "keep me please").status_code == 200


def _flask(args, env, stdin=""):
    return subprocess.run([str(BIN / "flask"), "--app", "auth", *args], env=env, cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=60)


def _env(mysql_db, **extra):
    """The CLI's environment: the test database and ``extra``, nothing inherited."""
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return process_env({**base, **mysql_db, **extra})


def test_real_cli_creates_a_user(mysql_db, users_table, email):
    env = _env(mysql_db, JWT_SECRET="x" * 32)
    assert _flask(["init-db"], env).returncode == 0
    result = _flask(["create-user", email, "--password-stdin"], env, "real cli pw\n")
    assert result.returncode == 0, result.stderr
    assert users_table(email) is not None


@pytest.mark.parametrize("secret", [None, ""])
def test_refuses_to_start_without_jwt_secret(mysql_db, secret):
    env = _env(mysql_db) if secret is None else _env(mysql_db, JWT_SECRET=secret)
    result = _flask(["init-db"], env)
    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_mysql_answers_503_json(unreachable_config, email):
    client = create_app({"AUTH": unreachable_config, "TESTING": True}).test_client()
    basic = b64encode(f"{email}:whatever1".encode()).decode()
    login = client.post("/login", headers={"Authorization": f"Basic {basic}"})
    assert login.status_code == 503
    assert login.is_json and "unavailable" in login.get_json()["error"]
    register = client.post("/register", json={"email": email, "password": "whatever1"})
    assert register.status_code == 503 and register.is_json
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.is_json
    assert client.get("/healthz").status_code == 200
