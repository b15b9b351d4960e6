"""The stack runner: secrets kept once, environment precedence, ports from the settings."""

import os
import stat

import pytest

from tools import devstack
from tools.processes import ROOT


def test_secrets_are_generated_once_and_private(tmp_path):
    path = tmp_path / "dev.env"
    first = devstack.load_or_create_secrets(path)
    assert set(first) == {"JWT_SECRET", "DOWNLOAD_URL_SECRET"}
    assert len(first["JWT_SECRET"]) >= 32 and first["JWT_SECRET"] != first["DOWNLOAD_URL_SECRET"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert devstack.load_or_create_secrets(path) == first


def test_a_missing_secret_is_added_and_the_others_kept(tmp_path):
    path = tmp_path / "dev.env"
    path.write_text("# local\nJWT_SECRET=keep-me\n")
    values = devstack.load_or_create_secrets(path)
    assert values["JWT_SECRET"] == "keep-me"
    assert values["DOWNLOAD_URL_SECRET"]
    assert "DOWNLOAD_URL_SECRET=" in path.read_text()


def test_callers_environment_wins_over_defaults_and_dev_env(tmp_path, monkeypatch):
    (tmp_path / "dev.env").write_text("JWT_SECRET=from-file\nDOWNLOAD_URL_SECRET=x\n")
    monkeypatch.setenv("JWT_SECRET", "from-shell")
    monkeypatch.setenv("MYSQL_PASSWORD", "other")
    env = devstack.dev_env(tmp_path)
    assert env["JWT_SECRET"] == "from-shell"
    assert env["DOWNLOAD_URL_SECRET"] == "x"
    assert env["MYSQL_PASSWORD"] == "other"
    monkeypatch.delenv("MYSQL_PASSWORD")
    assert devstack.dev_env(tmp_path)["MYSQL_PASSWORD"] == "auth_password"


def test_process_env_puts_src_and_the_venv_first():
    env = devstack.process_env({"PATH": "/usr/bin", "PYTHONPATH": "/elsewhere"}, PORT="1")
    assert env["PYTHONPATH"].split(os.pathsep) == [str(ROOT / "src"), "/elsewhere"]
    assert env["PATH"].startswith(str(devstack.BIN) + os.pathsep)
    assert env["PYTHONUNBUFFERED"] == "1" and env["PORT"] == "1"
    assert devstack.process_env({"PYTHONPATH": "src"})["PYTHONPATH"] == "src"


def test_stack_takes_its_ports_from_the_settings(tmp_path):
    env = {
        **devstack.DEV_DEFAULTS,
        "MONGODB_URI": "mongodb://127.0.0.1:27999",
        "SMTP_PORT": "2525",
        "AUTH_URL": "http://127.0.0.1:5999",
        "PUBLIC_URL": "http://127.0.0.1:8999",
    }
    stack = devstack.build_stack(env, tmp_path)
    assert list(stack.processes) == ["mongodb", "mailsink", *devstack.SERVICES]
    ports = {name: p.port for name, p in stack.processes.items()}
    assert ports == {
        "mongodb": 27999,
        "mailsink": 2525,
        "auth": 5999,
        "gateway": 8999,
        "converter": None,
        "notification": None,
    }
    assert stack["auth"].env["PORT"] == "5999" and stack["gateway"].env["PORT"] == "8999"
    assert stack["converter"].env["HEARTBEAT_FILE"] != stack["notification"].env["HEARTBEAT_FILE"]
    assert stack["gateway"].argv[-1] == "gateway:create_app()"
    assert all(p.log_path.parent == tmp_path / "log" for p in stack.processes.values())


def test_stack_without_servers_when_they_run_elsewhere(tmp_path):
    stack = devstack.build_stack(
        devstack.DEV_DEFAULTS,
        tmp_path,
        with_mongodb=False,
        with_mailsink=False,
        services=["gateway"],
    )
    assert list(stack.processes) == ["gateway"]


def test_make_run_starts_nx_27017_unless_mongodb_uri_is_given(tmp_path, monkeypatch):
    monkeypatch.delenv("MONGODB_URI", raising=False)
    env, stack = devstack.dev_stack(tmp_path)
    assert "mongodb" in stack.processes and env["MONGODB_URI"] == "mongodb://127.0.0.1:27017"
    assert all(p.echo for p in stack.processes.values())
    monkeypatch.setenv("MONGODB_URI", "mongodb://db.example:27017")
    env, stack = devstack.dev_stack(tmp_path)
    assert "mongodb" not in stack.processes and env["MONGODB_URI"] == "mongodb://db.example:27017"


def test_generated_secrets_are_strong_enough_for_the_services(tmp_path, monkeypatch):
    from common.settings import env_secret

    for name, value in devstack.load_or_create_secrets(tmp_path / "dev.env").items():
        monkeypatch.setenv(name, value)
        assert env_secret(name) == value


def test_the_dev_user_is_verified_even_when_it_was_made_before_verification(
        service_env, tmp_path):
    import MySQLdb

    log = tmp_path / "auth-cli.log"
    email = f"dev-{os.getpid()}-{tmp_path.name}@example.com".lower()
    devstack.init_db(service_env, log)
    assert devstack.create_user(service_env, email, "devpassword", log)
    assert not devstack.create_user(service_env, email, "devpassword", log)
    conn = MySQLdb.connect(host=service_env["MYSQL_HOST"], port=int(service_env["MYSQL_PORT"]),
                           user=service_env["MYSQL_USER"], passwd=service_env["MYSQL_PASSWORD"],
                           db=service_env["MYSQL_DB"], autocommit=True)
    try:
        with conn.cursor() as cur:  # as after init-db added the column to an older table
            cur.execute("UPDATE users SET verified = FALSE WHERE email = %s", (email,))
        devstack.verify_user(service_env, email, log)
        with conn.cursor() as cur:
            cur.execute("SELECT verified FROM users WHERE email = %s", (email,))
            assert cur.fetchone() == (1,)
    finally:
        conn.close()
    with pytest.raises(devstack.ProcessFailed, match="no user"):
        devstack.verify_user(service_env, f"nobody-{email}", log)


def test_make_run_sweeps_with_the_operator_command(service_env, tmp_path, capsys):
    import json

    log = tmp_path / "sweep.log"
    devstack._sweep(dict(service_env), log)
    assert capsys.readouterr().out == ""  # no "sweep failed" for the developer to read
    text = log.read_text()
    assert text.startswith("--- python -m ops sweep -> 0\n"), text
    printed = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any({"republished", "requeued", "expired", "orphan_files"} <= set(doc)
               for doc in printed), text
