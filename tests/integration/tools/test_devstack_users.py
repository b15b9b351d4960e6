"""The stack runner against the test servers: the dev user, and the sweep `make run` does."""

import os

import pytest

from tools import devstack

pytestmark = pytest.mark.integration


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
