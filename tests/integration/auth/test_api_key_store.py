"""auth's API keys against the real MariaDB: what POST /tokens accepts and refuses, the
account's limits, what /validate answers for a key (scopes, revoked, expired), and what is
stored (the SHA-256, never the secret)."""

import base64
import hashlib
from dataclasses import replace

import MySQLdb
import pytest

from auth.apikeys import KeySettings

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


@pytest.fixture
def login(runner, client, email):
    """A verified account made with create-user; its login token."""
    made = runner.invoke(args=["create-user", email, "--password-stdin"], input=f"{PASSWORD}\n")
    assert made.exit_code == 0, made.output
    raw = base64.b64encode(f"{email}:{PASSWORD}".encode()).decode()
    resp = client.post("/login", headers={"Authorization": f"Basic {raw}"})
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def make(client, jwt, **body):
    return client.post("/tokens", json={"name": "script", "scopes": ["read"], **body},
                       headers=bearer(jwt))


def rows(mysql_db) -> list[dict]:
    conn = MySQLdb.connect(host=mysql_db["MYSQL_HOST"], port=int(mysql_db["MYSQL_PORT"]),
                           user=mysql_db["MYSQL_USER"], passwd=mysql_db["MYSQL_PASSWORD"],
                           db=mysql_db["MYSQL_DB"])
    try:
        with conn.cursor(MySQLdb.cursors.DictCursor) as cur:
            cur.execute("SELECT * FROM api_keys")
            return list(cur.fetchall())
    finally:
        conn.close()


def test_a_key_is_shown_once_and_stored_as_its_sha256_only(client, login, mysql_db):
    resp = make(client, login, name="nightly backup", scopes=["upload", "read"],
                expires_in_days=30)
    assert resp.status_code == 201, resp.get_json()
    assert resp.headers["Cache-Control"] == "no-store"
    key = resp.get_json()
    secret = key.pop("secret")
    assert secret.startswith("mp3k_") and len(secret) >= 5 + 43
    assert key["name"] == "nightly backup" and key["scopes"] == ["upload", "read"]
    assert key["last_used_at"] is None and key["expires_at"] > key["created_at"]
    listed = client.get("/tokens", headers=bearer(login)).get_json()["tokens"]
    assert listed == [key] and "secret" not in str(listed)
    (row,) = [r for r in rows(mysql_db) if r["id"] == key["id"]]
    assert row["secret_sha256"] == hashlib.sha256(secret.encode()).digest()
    assert all(secret not in str(value) and secret[5:] not in str(value)
               for value in row.values())


@pytest.mark.parametrize(("body", "status", "message"), [
    ([], 400, "expected a JSON object"),
    ({"scopes": ["read"]}, 422, "name is required"),
    ({"name": "  ", "scopes": ["read"]}, 422, "name is required"),
    ({"name": "x" * 101, "scopes": ["read"]}, 422, "name must be at most 100 characters"),
    ({"name": "a\u200bb", "scopes": ["read"]}, 422, "control or invisible"),
    ({"name": "x", "scopes": []}, 422, "scopes must be a list of one or more of upload, read, "
                                       "delete"),
    ({"name": "x", "scopes": "read"}, 422, "scopes must be a list"),
    ({"name": "x", "scopes": ["admin"]}, 422, "unknown scope 'admin'"),
    ({"name": "x", "scopes": ["read"], "expires_in_days": 0}, 422,
     "expires_in_days must be a whole number from 1 to 365"),
    ({"name": "x", "scopes": ["read"], "expires_in_days": 1.5}, 422, "expires_in_days"),
    ({"name": "x", "scopes": ["read"], "expires_in_days": True}, 422, "expires_in_days"),
    ({"name": "x", "scopes": ["read"], "expires_in_days": 366}, 422, "expires_in_days"),
    ({"name": "x", "scopes": ["read"], "admin": True}, 422, "unknown field 'admin'"),
])
def test_bad_requests_get_a_clear_error(client, login, body, status, message):
    resp = client.post("/tokens", json=body, headers=bearer(login))
    assert resp.status_code == status, resp.get_json()
    assert message in resp.get_json()["error"]


def test_an_account_has_at_most_its_limit_of_keys_with_distinct_names(app, client, login):
    app.config["AUTH"] = replace(app.config["AUTH"], api_keys=KeySettings(per_account=2))
    assert make(client, login, name="one").status_code == 201
    taken = make(client, login, name="one")
    assert taken.status_code == 409 and "already has a key named 'one'" in taken.get_json()["error"]
    assert make(client, login, name="two").status_code == 201
    full = make(client, login, name="three")
    assert full.status_code == 409
    assert full.get_json()["error"] == ("this account has 2 API keys, the most it may have: "
                                        "revoke one it no longer needs first")


def test_validate_answers_a_keys_account_and_scopes_only_where_a_scope_is_named(
        client, login, mysql_db):
    key = make(client, login, scopes=["read", "delete"]).get_json()
    read = client.post("/validate?scope=read", headers=bearer(key["secret"]))
    assert read.status_code == 200
    claims = read.get_json()
    assert claims["sub"] == client.post("/validate", headers=bearer(login)).get_json()["sub"]
    assert claims["admin"] is False and claims["key"] == {
        "id": key["id"], "name": "script", "scopes": ["read", "delete"]}
    upload = client.post("/validate?scope=upload", headers=bearer(key["secret"]))
    assert upload.status_code == 403
    assert upload.get_json()["error"] == ("this API key lacks the 'upload' scope this needs "
                                          "(it has: read, delete)")
    for refused in (client.post("/validate", headers=bearer(key["secret"])),
                    client.get("/tokens", headers=bearer(key["secret"])),
                    client.post("/verify/resend", headers=bearer(key["secret"])),
                    client.delete("/account", json={"password": PASSWORD},
                                  headers=bearer(key["secret"]))):
        assert refused.status_code == 403, refused.get_json()
        assert "an API key cannot be used for the account" in refused.get_json()["error"]
    (row,) = [r for r in rows(mysql_db) if r["id"] == key["id"]]
    assert row["last_used_at"] is not None


def test_a_revoked_an_expired_and_an_unknown_key_are_401(client, login, mysql_db):
    revoked = make(client, login, name="revoked").get_json()
    assert client.delete(f"/tokens/{revoked['id']}", headers=bearer(login)).status_code == 204
    assert client.delete(f"/tokens/{revoked['id']}", headers=bearer(login)).status_code == 404
    expired = make(client, login, name="expired", expires_in_days=1).get_json()
    conn = MySQLdb.connect(host=mysql_db["MYSQL_HOST"], port=int(mysql_db["MYSQL_PORT"]),
                           user=mysql_db["MYSQL_USER"], passwd=mysql_db["MYSQL_PASSWORD"],
                           db=mysql_db["MYSQL_DB"], autocommit=True)
    with conn.cursor() as cur:
        cur.execute("UPDATE api_keys SET expires_at = UNIX_TIMESTAMP() - 1 WHERE id = %s",
                    (expired["id"],))
    conn.close()
    for secret, message in ((revoked["secret"], "this API key is not valid"),
                            (expired["secret"], "this API key expired at"),
                            ("mp3k_" + "A" * 43, "this API key is not valid")):
        resp = client.post("/validate?scope=read", headers=bearer(secret))
        assert resp.status_code == 401 and message in resp.get_json()["error"]
