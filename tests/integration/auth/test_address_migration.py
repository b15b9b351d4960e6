"""init-db on the users table of an earlier release: every account gets an id, addresses are
rewritten in the canonical form and compared byte for byte, and addresses that become one are
reported, never merged."""

import re
from base64 import b64encode

import MySQLdb
import pytest

from auth import create_app
from auth.passwords import hash_password
from tests.integration.auth.conftest import Runner, auth_config, smtp_settings
from tests.integration.auth.test_migrations import RELEASE_221AA6A
from tools.isolation import mysql_database

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
ROWS = {
    "Mixed.Case@Example.COM": "rewritten",
    "x@exämple.com": "collides",  # already canonical
    "x@xn--exmple-cua.com": "collides",  # the same domain, spelled in ASCII
    "e\u0435v@example.com": "refused",  # a Cyrillic е among Latin letters
    "plain@example.com": "kept",
}


def _login(client, email):
    raw = b64encode(f"{email}:{PASSWORD}".encode()).decode()
    return client.post("/login", headers={"Authorization": f"Basic {raw}"})


def test_init_db_gives_ids_rewrites_addresses_and_reports_collisions(mailsink, mariadb_server):
    with mysql_database("mp3addr", mariadb_server) as settings:
        conn = MySQLdb.connect(host=settings["MYSQL_HOST"], port=int(settings["MYSQL_PORT"]),
                               user=settings["MYSQL_USER"], passwd=settings["MYSQL_PASSWORD"],
                               db=settings["MYSQL_DB"], autocommit=True, charset="utf8mb4")
        try:
            with conn.cursor() as cur:
                for statement in RELEASE_221AA6A:  # case-, accent- and width-insensitive
                    cur.execute(statement)
                cur.execute("INSERT INTO deleted_users (email) VALUES ('gone@example.com')")
                for email in ROWS:
                    cur.execute("INSERT INTO users (email, password_hash, verified) "
                                "VALUES (%s, %s, TRUE)", (email, hash_password(PASSWORD)))
            config = auth_config(settings, smtp_settings(mailsink.host, mailsink.port))
            app = create_app({"AUTH": config, "TESTING": True})
            first = Runner(app).invoke(args=["init-db"])
            assert first.exit_code == 0, first.output
            with conn.cursor() as cur:
                cur.execute("SELECT email, account_id FROM users ORDER BY id")
                after = dict(cur.fetchall())
                cur.execute("SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE "
                            "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND "
                            "COLUMN_NAME = 'email'")
                assert cur.fetchone() == ("utf8mb4_bin",)
            assert "gave 5 existing account(s) an id" in first.output
            assert all(re.fullmatch(r"[0-9a-f]{32}", aid) for aid in after.values())
            assert len(set(after.values())) == 5
            assert set(after) == {"mixed.case@example.com", "x@exämple.com",
                                  "x@xn--exmple-cua.com", "e\u0435v@example.com",
                                  "plain@example.com"}
            [collision] = [line for line in first.output.splitlines() if "collision" in line]
            assert after["x@exämple.com"] in collision
            assert after["x@xn--exmple-cua.com"] in collision
            assert "none was changed or merged" in collision
            [refusal] = [line for line in first.output.splitlines() if "not acceptable" in line]
            assert after["e\u0435v@example.com"] in refusal
            assert "1 address(es) rewritten in the canonical form" in first.output

            again = Runner(app).invoke(args=["init-db"])
            assert again.exit_code == 0 and again.output == "users table ready\n"

            client = app.test_client()
            for spelling in ("MIXED.case@example.com", "x@EXÄMPLE.com", "plain@example.com"):
                assert _login(client, spelling).status_code == 200, spelling
            # Of two accounts that became one address, only the one spelled that way logs in.
            token = _login(client, "x@xn--exmple-cua.com").get_data(as_text=True)
            resp = client.post("/validate", headers={"Authorization": f"Bearer {token}"})
            assert resp.get_json()["sub"] == after["x@exämple.com"]
            # The operator settles it by account id.
            deleted = Runner(app).invoke(args=["delete-user", after["x@xn--exmple-cua.com"]])
            assert deleted.exit_code == 0, deleted.output
            listed = client.get("/deleted-users").get_json()["deleted"]
            assert {(d["account_id"], d["email"]) for d in listed} == {
                (None, "gone@example.com"),
                (after["x@xn--exmple-cua.com"], "x@xn--exmple-cua.com")}
            assert all(isinstance(d["deleted_at"], int) and d["registered_again_at"] is None
                       for d in listed), listed
            # An entry from before ids says when its address registered again.
            back = Runner(app).invoke(args=["create-user", "gone@example.com",
                                            "--password-stdin"], input=PASSWORD + "\n")
            assert back.exit_code == 0, back.output
            [gone] = [d for d in client.get("/deleted-users").get_json()["deleted"]
                      if d["account_id"] is None]
            assert isinstance(gone["registered_again_at"], int), gone
            assert gone["registered_again_at"] >= gone["deleted_at"]
        finally:
            conn.close()
