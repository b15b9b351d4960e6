"""API keys over HTTP against the real processes: made, listed and revoked with a login; each
scope opens exactly its routes; never the account or the keys; revoked, expired and deleted
accounts' keys are 401 at once; and the curl flows of the README, with a login and with a key."""

from __future__ import annotations

import json

import MySQLdb
import pytest

from tests.e2e.api import classic_login, classic_upload, curl, wait_for_job
from tests.e2e.storage import call

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery"
NO_JOB = "0123456789abcdef01234567"  # a well-formed job id nobody has


def mysql(stack):
    """A connection to the stack's auth database, as its operator has."""
    env = stack.env
    return MySQLdb.connect(host=env["MYSQL_HOST"], port=int(env["MYSQL_PORT"]),
                           user=env["MYSQL_USER"], password=env["MYSQL_PASSWORD"],
                           database=env["MYSQL_DB"], autocommit=True)


def key_rows(stack, account_id: str) -> list[tuple]:
    conn = mysql(stack)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, name FROM api_keys WHERE account_id = %s", (account_id,))
            return list(cur.fetchall())
    finally:
        conn.close()


def make_key(stack, jwt: str, name: str = "script", scopes=("upload", "read", "delete"),
             **extra) -> dict:
    resp = call(stack, "POST", "/tokens", jwt,
                json={"name": name, "scopes": list(scopes), **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def done_job(stack, media) -> tuple[str, str, dict]:
    """A user with one converted job: (email, jwt, job)."""
    email, jwt = stack.user(PASSWORD)
    status, accepted = classic_upload(stack, jwt, media("mov"))
    assert status == 202, accepted
    job = wait_for_job(stack, jwt, accepted["job_id"])
    assert job["status"] == "done", job
    return email, jwt, job


def test_a_key_is_made_listed_and_revoked_with_a_login_and_refused_at_once(stack):
    _, jwt = stack.user(PASSWORD)
    key = make_key(stack, jwt, "laptop backup", ["read"], expires_in_days=30)
    secret = key.pop("secret")
    assert secret.startswith("mp3k_")
    assert key["name"] == "laptop backup" and key["scopes"] == ["read"]
    assert key["created_at"].endswith("Z") and key["expires_at"] > key["created_at"]
    assert call(stack, "GET", "/jobs", secret).status_code == 200
    listed = call(stack, "GET", "/tokens", jwt).json()["tokens"]
    assert [k["id"] for k in listed] == [key["id"]] and "secret" not in listed[0]
    assert listed[0]["last_used_at"] is not None  # the request just made
    assert secret not in json.dumps(listed)

    assert call(stack, "DELETE", f"/tokens/{key['id']}", jwt).status_code == 204
    refused = call(stack, "GET", "/jobs", secret)  # at once: nothing cached the key
    assert refused.status_code == 401 and "not valid" in refused.json()["error"]
    assert call(stack, "GET", "/tokens", jwt).json() == {"tokens": []}
    assert call(stack, "DELETE", f"/tokens/{key['id']}", jwt).status_code == 404


def test_bad_requests_get_a_clear_error(stack):
    _, jwt = stack.user(PASSWORD)
    cases = [({"name": "x", "scopes": ["admin"]}, 422, "unknown scope 'admin'"),
             ({"scopes": ["read"]}, 422, "name is required"),
             ({"name": "x", "scopes": ["read"], "expires_in_days": -1}, 422, "expires_in_days")]
    for body, status, message in cases:
        resp = call(stack, "POST", "/tokens", jwt, json=body)
        assert resp.status_code == status and message in resp.json()["error"], resp.text
    not_json = call(stack, "POST", "/tokens", jwt, data=b"name=x",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code == 400 and "JSON object" in not_json.json()["error"]
    for bad_id in ("nope", "F" * 16, "f" * 17):
        resp = call(stack, "DELETE", f"/tokens/{bad_id}", jwt)
        assert resp.status_code == 404 and resp.json() == {"error": "no such API key"}, bad_id


def test_another_users_key_cannot_be_revoked_or_listed(stack):
    _, alice = stack.user(PASSWORD)
    _, mallory = stack.user(PASSWORD)
    key = make_key(stack, alice, "alice's", ["read"])
    resp = call(stack, "DELETE", f"/tokens/{key['id']}", mallory)
    assert resp.status_code == 404 and resp.json() == {"error": "no such API key"}
    assert call(stack, "GET", "/tokens", mallory).json() == {"tokens": []}
    assert call(stack, "GET", "/jobs", key["secret"]).status_code == 200


def test_each_scope_opens_exactly_its_routes_and_403_names_the_one_missing(
        stack, media, done_job):
    _, jwt, job = done_job
    routes = {  # (method, path, what it sends) -> the scope it needs
        ("GET", "/jobs"): "read",
        ("GET", f"/jobs/{job['job_id']}"): "read",
        ("GET", f"/jobs/{job['job_id']}/cover"): "read",
        ("GET", f"/jobs/{job['job_id']}/download-url"): "read",
        ("GET", f"/download?fid={job['mp3_fid']}"): "read",
        ("DELETE", f"/jobs/{NO_JOB}"): "delete",
        ("POST", "/upload"): "upload",
    }
    allowed = {"read": 200, "delete": 404, "upload": 202}  # 404: past auth, no such job
    clip = media("mkv_mp3")
    for scope in ("upload", "read", "delete"):
        secret = make_key(stack, jwt, f"only {scope}", [scope])["secret"]
        for (method, path), needs in routes.items():
            if method == "POST":
                with open(clip, "rb") as fh:
                    resp = call(stack, method, path, secret, files={"file": fh})
            else:
                resp = call(stack, method, path, secret)
            if needs == scope:
                assert resp.status_code == allowed[needs], (scope, path, resp.text[:200])
            else:
                assert resp.status_code == 403, (scope, path, resp.text[:200])
                assert resp.json()["error"] == (f"this API key lacks the '{needs}' scope this "
                                                f"needs (it has: {scope})")
    download = call(stack, "GET", f"/download?fid={job['mp3_fid']}",
                    make_key(stack, jwt, "reader", ["read"])["secret"])
    assert download.headers["Content-Type"] == "audio/mpeg" and len(download.content) == \
        job["mp3_size"]


def test_a_key_never_manages_the_account_or_the_keys(stack):
    email, jwt = stack.user(PASSWORD)
    key = make_key(stack, jwt, "everything")
    secret = key["secret"]
    attempts = [("GET", "/account", {}), ("DELETE", "/account", {"json": {"password": PASSWORD}}),
                ("POST", "/verify/resend", {}), ("GET", "/admin/usage", {}),
                ("GET", "/tokens", {}),
                ("POST", "/tokens", {"json": {"name": "child", "scopes": ["read"]}}),
                ("DELETE", f"/tokens/{key['id']}", {})]
    for method, path, kwargs in attempts:
        resp = call(stack, method, path, secret, **kwargs)
        assert resp.status_code == 403, (method, path, resp.text)
        assert "an API key cannot be used for the account or its keys" in resp.json()["error"]
    # nothing happened: the account, its one key and the login are as they were
    assert call(stack, "GET", "/account", jwt).json()["email"] == email
    assert [k["id"] for k in call(stack, "GET", "/tokens", jwt).json()["tokens"]] == [key["id"]]
    assert call(stack, "GET", "/jobs", secret).status_code == 200


def test_an_expired_key_is_401(stack):
    _, jwt = stack.user(PASSWORD)
    key = make_key(stack, jwt, "short-lived", ["read"], expires_in_days=1)
    assert call(stack, "GET", "/jobs", key["secret"]).status_code == 200
    conn = mysql(stack)
    try:
        with conn.cursor() as cur:  # a day later, as far as the key is concerned
            cur.execute("UPDATE api_keys SET expires_at = UNIX_TIMESTAMP() - 1 WHERE id = %s",
                        (key["id"],))
    finally:
        conn.close()
    resp = call(stack, "GET", "/jobs", key["secret"])
    assert resp.status_code == 401
    assert resp.json()["error"].startswith("this API key expired at ")
    assert call(stack, "GET", "/jobs", jwt).status_code == 200  # the login is not affected


def test_deleting_the_account_revokes_its_keys(stack):
    email, jwt = stack.user(PASSWORD)
    keys = [make_key(stack, jwt, name) for name in ("one", "two")]
    account_id = stack.account_id(jwt)
    assert len(key_rows(stack, account_id)) == 2
    resp = call(stack, "DELETE", "/account", None, auth=(email, PASSWORD))
    assert resp.status_code == 204, resp.text
    for key in keys:
        refused = call(stack, "GET", "/jobs", key["secret"])
        assert refused.status_code == 401, refused.text
    assert key_rows(stack, account_id) == []
    # the same address registered again is a new account: the old keys open nothing of it
    stack.register(email, PASSWORD)
    assert call(stack, "GET", "/jobs", keys[0]["secret"]).status_code == 401


def test_the_readme_curl_flows_with_a_login_and_with_a_key(stack, media):
    email, _ = stack.user(PASSWORD)
    gw = stack.gateway_url
    # the classic flow: login -u, upload -F file=@..., download?fid=
    jwt = classic_login(stack, email, PASSWORD)
    status, accepted = classic_upload(stack, jwt, media("mov"))
    assert status == 202, accepted
    job = wait_for_job(stack, jwt, accepted["job_id"])
    status, body = curl("-H", f"Authorization: Bearer {jwt}", f"{gw}/download?fid={job['mp3_fid']}")
    assert status == 200 and len(body) == job["mp3_size"]
    # "For scripts": a key made with curl after logging in, then upload and download with it
    status, body = curl("-X", "POST", "-H", f"Authorization: Bearer {jwt}", "-H",
                        "Content-Type: application/json", "-d",
                        '{"name": "backup script", "scopes": ["upload", "read"]}',
                        f"{gw}/tokens")
    assert status == 201, body
    key = json.loads(body)["secret"]
    status, body = curl("-X", "POST", "-F", f"file=@{media('mov')}", "-H",
                        f"Authorization: Bearer {key}", f"{gw}/upload")
    assert status == 202, body
    job = wait_for_job(stack, key, json.loads(body)["job_id"])
    assert job["status"] == "done", job
    status, body = curl("-H", f"Authorization: Bearer {key}",
                        f"{gw}/download?fid={job['mp3_fid']}")
    assert status == 200 and len(body) == job["mp3_size"] and body[:3] == b"ID3"
