"""API keys under attack on the real processes: the secret is never written anywhere in clear
(service logs, auth's MySQL), a guessed or another user's key opens nothing, and a script with
a key is held to the same per-user upload limit as its owner's login."""

from __future__ import annotations

import hashlib
import secrets

import MySQLdb
import pytest
import requests

from tests.e2e.api import classic_upload, wait_for_job

pytestmark = pytest.mark.security

PASSWORD = "correct horse battery"


def call(stack, method: str, path: str, token: str | None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{stack.gateway_url}{path}", headers=headers, timeout=30,
                            **kwargs)


def every_value_in_mysql(stack) -> list[bytes]:
    """Every value of every row of every table of auth's database, as bytes."""
    env = stack.env
    conn = MySQLdb.connect(host=env["MYSQL_HOST"], port=int(env["MYSQL_PORT"]),
                           user=env["MYSQL_USER"], password=env["MYSQL_PASSWORD"],
                           database=env["MYSQL_DB"])
    values = []
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            for (table,) in cur.fetchall():
                cur.execute(f"SELECT * FROM `{table}`")
                for row in cur.fetchall():
                    values += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    finally:
        conn.close()
    return values


def test_the_secret_is_in_no_log_line_and_only_its_sha256_is_stored(stack, media):
    _, jwt = stack.user(PASSWORD)
    made = call(stack, "POST", "/tokens", jwt,
                json={"name": "leak check", "scopes": ["upload", "read", "delete"]})
    assert made.status_code == 201
    key = made.json()
    secret = key["secret"]
    # use it every way there is: accepted, refused for its scope, on the account, revoked
    with open(media("mov"), "rb") as fh:
        accepted = call(stack, "POST", "/upload", secret, files={"file": fh})
    assert accepted.status_code == 202
    job = wait_for_job(stack, secret, accepted.json()["job_id"])
    assert call(stack, "GET", f"/download?fid={job['mp3_fid']}", secret).status_code == 200
    assert call(stack, "GET", "/account", secret).status_code == 403
    assert call(stack, "DELETE", "/account", secret, json={"password": PASSWORD}).status_code \
        == 403
    assert call(stack, "DELETE", f"/tokens/{key['id']}", jwt).status_code == 204
    assert call(stack, "GET", "/jobs", secret).status_code == 401
    assert call(stack, "GET", "/jobs", secret[:-1]).status_code == 401  # a typo

    body = secret.removeprefix("mp3k_").encode()
    for name, path in stack.logs.items():
        text = path.read_bytes()
        assert body not in text and body[:20] not in text, f"{name} logged the secret"
    stored = every_value_in_mysql(stack)
    assert not any(body[:20] in value for value in stored), "a secret is stored in clear"
    assert hashlib.sha256(secret.encode()).digest() not in stored  # revoked: gone, not hidden


def test_a_stored_key_is_its_sha256_and_nothing_that_gives_the_secret_back(stack):
    _, jwt = stack.user(PASSWORD)
    secret = call(stack, "POST", "/tokens", jwt,
                  json={"name": "kept", "scopes": ["read"]}).json()["secret"]
    stored = every_value_in_mysql(stack)
    assert hashlib.sha256(secret.encode()).digest() in stored
    assert not any(secret.removeprefix("mp3k_").encode()[:20] in value for value in stored)


def test_guessed_keys_and_another_users_key_open_nothing(stack, media):
    _, alice = stack.user(PASSWORD)
    _, mallory = stack.user(PASSWORD)
    status, accepted = classic_upload(stack, alice, media("mov"))
    assert status == 202
    job = wait_for_job(stack, alice, accepted["job_id"])
    for guess in ("mp3k_", "mp3k_" + secrets.token_urlsafe(32), "MP3K_x", "mp3k_' OR 1=1 --"):
        assert call(stack, "GET", "/jobs", guess).status_code == 401, guess
    stolen = call(stack, "POST", "/tokens", mallory,
                  json={"name": "mallory", "scopes": ["read", "delete"]}).json()["secret"]
    for method, path in (("GET", f"/jobs/{job['job_id']}"),
                         ("GET", f"/download?fid={job['mp3_fid']}"),
                         ("GET", f"/jobs/{job['job_id']}/cover"),
                         ("DELETE", f"/jobs/{job['job_id']}")):
        assert call(stack, method, path, stolen).status_code == 404, path
    assert call(stack, "GET", f"/jobs/{job['job_id']}", alice).json()["status"] == "done"


def test_a_keys_uploads_count_with_its_owners_login_against_the_per_user_limit(
        stack_factory, media):
    stack = stack_factory(services=("auth", "gateway"), AUTH_TIMEOUT_SECONDS="60",
                          UPLOAD_RATE_LIMIT_PER_USER="2 per hour")
    clip = media("mkv_mp3")
    _, jwt = stack.user(PASSWORD, verified=False)
    first = call(stack, "POST", "/tokens", jwt, json={"name": "a", "scopes": ["upload"]})
    second = call(stack, "POST", "/tokens", jwt, json={"name": "b", "scopes": ["upload"]})
    keys = [first.json()["secret"], second.json()["secret"]]

    def upload(token):
        with open(clip, "rb") as fh:
            return call(stack, "POST", "/upload", token, files={"file": fh})

    assert [upload(jwt).status_code, upload(keys[0]).status_code] == [202, 202]
    for token in (keys[1], keys[0], jwt):  # one count per account, whichever key or login
        limited = upload(token)
        assert limited.status_code == 429 and "too many uploads" in limited.json()["error"]
        assert int(limited.headers["Retry-After"]) > 60
