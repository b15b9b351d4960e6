"""The stack runner: secrets kept once, environment precedence, ports from the settings."""

import os
import stat
import subprocess
import sys

from tools import devstack


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


def test_process_env_puts_the_venv_first():
    env = devstack.process_env({"PATH": "/usr/bin"}, PORT="1")
    assert env["PATH"].split(os.pathsep) == [str(devstack.BIN), "/usr/bin"]
    assert env["PYTHONUNBUFFERED"] == "1" and env["PORT"] == "1"


def test_the_services_are_importable_without_pythonpath(tmp_path):
    """`pip install -e .` put them in the venv: a child started anywhere imports them, and
    the gateway finds its page and OpenAPI document."""
    env = devstack.process_env({"PATH": "/usr/bin:/bin"})
    code = ("import auth, common, converter, gateway, notification, ops, gateway.ui as ui; "
            "print(ui.openapi_document()['openapi'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("3."), out.stderr


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
