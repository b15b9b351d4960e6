"""auth's HTTP API: register, login (raw JWT), validate."""

import base64
import json
import re
import time

import jwt
import pytest
from argon2 import PasswordHasher

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


def _basic(user: str, password: str) -> dict:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _register(client, email, password=PASSWORD):
    return client.post("/register", json={"email": email, "password": password})


def _login(client, email, password=PASSWORD):
    return client.post("/login", headers=_basic(email, password))


# -- register ----------------------------------------------------------------------------------
def test_register_creates_an_unverified_account_and_emails_its_link(client, email, mailsink,
                                                                   users_table):
    resp = _register(client, email)
    assert resp.status_code == 201
    assert resp.get_json() == {"email": email}
    assert users_table(email)[3] == 0
    (mail,) = mailsink.wait_for(1, timeout=10, to=email)
    assert mail["Subject"] == "Confirm your email address for mp3converter"
    assert "http://gw.example:8080/verify?token=" in mail.get_content()


def test_register_normalises_the_email_to_lower_case(client, email):
    resp = _register(client, email.upper())
    assert resp.status_code == 201 and resp.get_json() == {"email": email}
    assert _login(client, email).status_code == 200


def test_register_twice_is_409(client, email):
    assert _register(client, email).status_code == 201
    resp = _register(client, email.upper(), "another password")
    assert resp.status_code == 409
    assert "already exists" in resp.get_json()["error"]
    assert _login(client, email, "another password").status_code == 401


@pytest.mark.parametrize("bad", ["not-an-email", "a@", "@example.com", "a b@example.com"])
def test_register_bad_email_is_422(client, bad):
    resp = _register(client, bad)
    assert resp.status_code == 422
    assert "invalid email" in resp.get_json()["error"]


def test_register_short_password_is_422(client, email):
    resp = _register(client, email, "short")
    assert resp.status_code == 422
    assert "at least 8" in resp.get_json()["error"]
    assert _login(client, email, "short").status_code == 401


def test_register_non_string_fields_are_422(client, email):
    resp = client.post("/register", json={"email": email, "password": 12345678})
    assert resp.status_code == 422


@pytest.mark.parametrize("body, content_type", [
    ("email=a@example.com&password=12345678", "application/x-www-form-urlencoded"),
    ("{not json", "application/json"),
    ('["a@example.com", "12345678"]', "application/json"),
])
def test_register_non_json_object_is_400(client, body, content_type):
    resp = client.post("/register", data=body, content_type=content_type)
    assert resp.status_code == 400
    assert resp.is_json and "JSON object" in resp.get_json()["error"]


def test_password_is_stored_as_an_argon2id_hash(client, email, users_table):
    _register(client, email)
    row = users_table(email)
    assert row is not None
    stored = row[1]
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)
    assert row[2] == 0


# -- login -------------------------------------------------------------------------------------
def test_login_returns_a_raw_jwt_as_text(client, email, config):
    _register(client, email)
    resp = _login(client, email)
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    token = resp.get_data(as_text=True)
    assert token.count(".") == 2 and not token.startswith('"')
    claims = jwt.decode(token, config.jwt_secret, algorithms=["HS256"])
    assert re.fullmatch(r"[0-9a-f]{32}", claims["sub"]) and claims["email"] == email


def test_login_email_is_case_insensitive(client, email):
    _register(client, email)
    assert _login(client, email.upper()).status_code == 200


def test_register_and_login_read_an_address_by_one_rule(client, email):
    # What login forgives (spaces around, case, full width), registration forgives too.
    resp = _register(client, f" {email.upper()} ")
    assert resp.status_code == 201 and resp.get_json() == {"email": email}
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in email)
    assert _register(client, wide).status_code == 409
    for spelling in (email, f"{email} ", f"\t{email.upper()}", wide):
        assert _login(client, spelling).status_code == 200, spelling


def test_wrong_password_and_unknown_email_get_the_same_401(client, email):
    _register(client, email)
    wrong = _login(client, email, "wrong password!")
    unknown = _login(client, f"nobody-{email}")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json() == {"error": "invalid email or password"}
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer abc.def.ghi"},
                                     {"Authorization": "Basic !!!notbase64"}])
def test_login_without_basic_credentials_is_401(client, headers):
    resp = client.post("/login", headers=headers)
    assert resp.status_code == 401
    assert resp.is_json and "credentials" in resp.get_json()["error"]
    assert "Basic" in resp.headers["WWW-Authenticate"]


# -- validate ----------------------------------------------------------------------------------
def _token(client, email) -> str:
    _register(client, email)
    return _login(client, email).get_data(as_text=True)


def _validate(client, header):
    return client.post("/validate", headers={"Authorization": header} if header else {})


def test_validate_returns_the_claims(client, email, config):
    before = int(time.time())
    token = _token(client, email)
    resp = _validate(client, f"Bearer {token}")
    assert resp.status_code == 200
    claims = resp.get_json()
    assert re.fullmatch(r"[0-9a-f]{32}", claims["sub"]) and claims["email"] == email
    assert claims["admin"] is False
    assert claims["verified"] is False
    assert before <= claims["iat"] <= time.time()
    assert claims["exp"] - claims["iat"] == config.jwt_ttl_seconds


def test_validate_accepts_lower_case_scheme(client, email):
    token = _token(client, email)
    assert _validate(client, f"bearer {token}").status_code == 200


def _b64(doc: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def _claims(email: str, **extra) -> dict:
    now = int(time.time())
    return {"sub": email, "iat": now, "exp": now + 600, "admin": True, **extra}


@pytest.mark.parametrize("make_header, reason", [
    (lambda token, secret, email: None, "missing"),
    (lambda token, secret, email: token, "Bearer"),
    (lambda token, secret, email: f"Token {token}", "Bearer"),
    (lambda token, secret, email: "Bearer ", "Bearer"),
    (lambda token, secret, email: "Bearer not-a-jwt", "invalid token"),
    (lambda token, secret, email: f"Bearer {token[:-3]}abc", "invalid token"),
    (lambda token, secret, email: "Bearer " + jwt.encode(_claims(email), "another secret",
                                                          algorithm="HS256"), "invalid token"),
    (lambda token, secret, email: "Bearer " + _b64({"alg": "none", "typ": "JWT"}) + "."
     + _b64(_claims(email)) + ".", "invalid token"),
    (lambda token, secret, email: "Bearer " + jwt.encode(_claims(email), secret,
                                                          algorithm="HS512"), "invalid token"),
    (lambda token, secret, email: "Bearer " + jwt.encode(
        _claims(email, iat=int(time.time()) - 700, exp=int(time.time()) - 100), secret,
        algorithm="HS256"), "expired"),
    (lambda token, secret, email: "Bearer " + jwt.encode(
        {"sub": email, "admin": True}, secret, algorithm="HS256"), "invalid token"),
], ids=["missing header", "no scheme", "wrong scheme", "empty token", "garbage",
        "tampered signature", "other secret", "alg none", "HS512", "expired", "no exp"])
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_validate_rejects_bad_tokens_with_401(client, config, email, make_header, reason):
    token = _token(client, email)
    resp = _validate(client, make_header(token, config.jwt_secret, email))
    assert resp.status_code == 401
    assert resp.is_json and reason in resp.get_json()["error"]


# -- health ------------------------------------------------------------------------------------
def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readyz_says_only_not_ready_and_logs_why(unreachable_config, capsys):
    from auth import create_app

    client = create_app({"AUTH": unreachable_config, "TESTING": True}).test_client()
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.get_json() == {"error": "not ready"}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    [line] = [doc for doc in lines if doc["msg"] == "not ready"]
    assert line["checks"]["mysql"].startswith("unavailable: ")


def test_request_body_limit_is_enforced_with_json(client):
    resp = client.post("/register", data="x" * (65 * 1024), content_type="application/json")
    assert resp.status_code == 413 and resp.is_json
