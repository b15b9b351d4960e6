"""Email verification in auth: the emailed link, resending it, and what notification asks."""

import base64
import re
import time
from urllib.parse import parse_qs, urlparse

import jwt
import MySQLdb
import pytest

from auth import create_app, tokens
from tests.integration.auth.conftest import Runner, auth_config, smtp_settings
from tools.isolation import mysql_database
from tools.processes import free_port

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


def _basic(email: str, password: str = PASSWORD) -> dict:
    raw = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _login_token(client, email: str) -> str:
    resp = client.post("/login", headers=_basic(email))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_data(as_text=True)


def _link_token(mailsink, email: str, count: int = 1) -> str:
    """The token of the newest verification link emailed to ``email``."""
    mails = mailsink.wait_for(count, timeout=10, to=email)
    url = re.search(r"http\S+/verify\?\S+", mails[-1].get_content()).group(0)
    return parse_qs(urlparse(url).query)["token"][0]


def _verify(client, token):
    return client.post("/verify", json={"token": token})


def _status(client, email):
    return client.get(f"/users/{email}")


def _state(client, email) -> dict:
    """What auth tells notification about the address: its account's id, address, state."""
    resp = _status(client, email)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"account_id", "email", "verified", "created_at"}
    return body


def _account_id(client, email) -> str:
    return _state(client, email)["account_id"]


def test_the_emailed_link_confirms_the_address_once_and_again_harmlessly(client, email, mailsink,
                                                                         config):
    assert client.post("/register", json={"email": email, "password": PASSWORD}).status_code == 201
    state = _state(client, email)
    assert state["email"] == email and state["verified"] is False
    assert _state(client, state["account_id"]) == state  # by id, as notification asks
    token = _link_token(mailsink, email)
    claims = jwt.decode(token, config.jwt_secret, algorithms=["HS256"], audience="verify")
    assert claims["sub"] == state["account_id"] and claims["email"] == email
    assert claims["exp"] - claims["iat"] == config.verify_ttl_seconds
    for _ in range(2):
        resp = _verify(client, token)
        assert resp.status_code == 200 and resp.get_json() == {"email": email, "verified": True}
    assert _state(client, email)["verified"] is True
    login = jwt.decode(_login_token(client, email), config.jwt_secret, algorithms=["HS256"])
    assert login["verified"] is True


def test_unknown_address_is_404(client, email):
    resp = _status(client, email)
    assert resp.status_code == 404 and resp.is_json


def test_expired_link_is_410_with_a_clear_message(client, email, config, users_table):
    assert client.post("/register", json={"email": email, "password": PASSWORD}).status_code == 201
    expired = tokens.issue_verify(config.jwt_secret, _account_id(client, email), email, -10)
    resp = _verify(client, expired)
    assert resp.status_code == 410
    assert "expired" in resp.get_json()["error"] and "ask for a new one" in resp.get_json()["error"]
    assert users_table(email)[3] == 0


def _login_claims(account_id: str, email: str) -> dict:
    return {"account_id": account_id, "email": email, "is_admin": False, "verified": False}


@pytest.mark.parametrize("make_token", [
    lambda secret, aid, email: tokens.issue_verify("another secret, long enough to sign with",
                                                   aid, email, 600),
    lambda secret, aid, email: tokens.issue(secret, _login_claims(aid, email), 600),
    lambda secret, aid, email: jwt.encode({"sub": aid, "email": email, "aud": "verify"}, secret,
                                          algorithm="HS256"),
    lambda secret, aid, email: tokens.issue_verify(secret, aid, email, 600)[:-4] + "abcd",
    lambda secret, aid, email: tokens.issue_verify(secret, aid, f"other-{email}", 600),
    lambda secret, aid, email: tokens.issue_verify(secret, "0" * 32, email, 600),
    lambda secret, aid, email: jwt.encode({"sub": aid, "iat": 1, "exp": 2 ** 40,
                                           "aud": "verify"}, secret, algorithm="HS256"),
    lambda secret, aid, email: "not-a-token",
    lambda secret, aid, email: 12345,
    lambda secret, aid, email: "",
], ids=["forged", "login token", "no expiry", "tampered", "another address", "another account",
        "no address", "garbage", "not a string", "empty"])
def test_forged_or_malformed_links_are_400_and_verify_nothing(client, email, config, users_table,
                                                              make_token):
    assert client.post("/register", json={"email": email, "password": PASSWORD}).status_code == 201
    resp = _verify(client, make_token(config.jwt_secret, _account_id(client, email), email))
    assert resp.status_code == 400
    assert resp.is_json and "link" in resp.get_json()["error"]
    assert users_table(email)[3] == 0


def test_a_verification_token_is_not_a_login_token(client, email, config):
    assert client.post("/register", json={"email": email, "password": PASSWORD}).status_code == 201
    token = tokens.issue_verify(config.jwt_secret, _account_id(client, email), email, 600)
    resp = client.post("/validate", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401 and "invalid token" in resp.get_json()["error"]
    resend = client.post("/verify/resend", headers={"Authorization": f"Bearer {token}"})
    assert resend.status_code == 401


def test_resend_waits_for_its_cooldown_and_stops_once_verified(app, client, email, mailsink):
    assert client.post("/register", json={"email": email, "password": PASSWORD}).status_code == 201
    bearer = {"Authorization": f"Bearer {_login_token(client, email)}"}
    early = client.post("/verify/resend", headers=bearer)
    assert early.status_code == 429
    assert 1 <= int(early.headers["Retry-After"]) <= 60
    assert "check your inbox" in early.get_json()["error"]
    assert len(mailsink.messages(to=email)) == 1

    no_wait = create_app({"AUTH": _config_of(app, verify_resend_seconds=0), "TESTING": True})
    resp = no_wait.test_client().post("/verify/resend", headers=bearer)
    assert resp.status_code == 200 and resp.get_json() == {"email": email, "verified": False}
    token = _link_token(mailsink, email, count=2)
    assert _verify(client, token).status_code == 200
    done = no_wait.test_client().post("/verify/resend", headers=bearer)
    assert done.status_code == 409 and "already confirmed" in done.get_json()["error"]
    assert len(mailsink.messages(to=email)) == 2


def _config_of(app, **overrides):
    from dataclasses import replace

    return replace(app.config["AUTH"], **overrides)


def test_mail_server_down_registration_is_503_and_nothing_is_kept(app, client, email,
                                                                  users_table):
    down = create_app({"AUTH": _config_of(app, smtp=smtp_settings("127.0.0.1", free_port())),
                       "TESTING": True}).test_client()
    resp = down.post("/register", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 503
    assert "verification email" in resp.get_json()["error"]
    assert users_table(email) is None
    assert client.post("/register", json={"email": email, "password": PASSWORD}).status_code == 201


class RefuseEveryone:
    """aiosmtpd handler of a mail server that refuses every recipient for good."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        return "550 no such user here"


def test_an_address_the_mail_server_refuses_is_422_and_not_kept(app, email, users_table):
    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(RefuseEveryone(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        refusing = create_app({"AUTH": _config_of(app, smtp=smtp_settings("127.0.0.1", port)),
                               "TESTING": True}).test_client()
        resp = refusing.post("/register", json={"email": email, "password": PASSWORD})
    finally:
        controller.stop()
    assert resp.status_code == 422 and "refused this address" in resp.get_json()["error"]
    assert users_table(email) is None


def test_create_user_makes_verified_users_and_verify_user_confirms_one(runner, client, email,
                                                                       users_table, mailsink):
    result = runner.invoke(args=["create-user", email, "--password-stdin"], input=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert users_table(email)[3] == 1
    assert mailsink.messages(to=email) == []
    other = f"other-{email}"
    assert client.post("/register", json={"email": other, "password": PASSWORD}).status_code == 201
    result = runner.invoke(args=["verify-user", other.upper()])
    assert result.exit_code == 0 and f"verified user {other}" in result.output
    assert users_table(other)[3] == 1
    missing = runner.invoke(args=["verify-user", f"nobody-{email}"])
    assert missing.exit_code != 0 and "no user" in missing.output


OLD_SCHEMA = """
CREATE TABLE users (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""


def test_init_db_migrates_an_existing_table_once_and_keeps_its_users(mailsink,
                                                                      mariadb_server):
    from auth.passwords import hash_password

    with mysql_database("mp3mig", mariadb_server) as settings:
        conn = MySQLdb.connect(host=settings["MYSQL_HOST"], port=int(settings["MYSQL_PORT"]),
                               user=settings["MYSQL_USER"], passwd=settings["MYSQL_PASSWORD"],
                               db=settings["MYSQL_DB"], autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(OLD_SCHEMA)
                cur.execute("INSERT INTO users (email, password_hash) VALUES (%s, %s)",
                            ("old@example.com", hash_password(PASSWORD)))
            config = auth_config(settings, smtp_settings(mailsink.host, mailsink.port))
            app = create_app({"AUTH": config, "TESTING": True})
            first = Runner(app).invoke(args=["init-db"])
            assert first.exit_code == 0, first.output
            assert "added column users.verified" in first.output
            assert "added column users.verify_sent_at" in first.output
            assert "gave 1 existing account(s) an id" in first.output
            again = Runner(app).invoke(args=["init-db"])
            assert again.exit_code == 0 and again.output == "users table ready\n"
            with conn.cursor() as cur:
                cur.execute("SELECT verified, verify_sent_at FROM users WHERE email = %s",
                            ("old@example.com",))
                assert cur.fetchone() == (0, None)
            client = app.test_client()
            token = _login_token(client, "old@example.com")
            assert jwt.decode(token, config.jwt_secret, algorithms=["HS256"])["verified"] is False
            resend = client.post("/verify/resend", headers={"Authorization": f"Bearer {token}"})
            assert resend.status_code == 200, resend.get_data(as_text=True)
            assert _verify(client, _link_token(mailsink, "old@example.com")).status_code == 200
        finally:
            conn.close()


def test_verification_link_lifetime_is_the_configured_one(make_config):
    config = make_config(verify_ttl_seconds=90)
    from auth import verification

    url = urlparse(verification.link(config, "0" * 32, "a@example.com"))
    assert f"{url.scheme}://{url.netloc}" == "http://gw.example:8080" and url.path == "/verify"
    claims = jwt.decode(parse_qs(url.query)["token"][0], config.jwt_secret,
                        algorithms=["HS256"], audience="verify")
    assert claims["exp"] - claims["iat"] == 90
    assert claims["exp"] <= time.time() + 90
