"""Property: any two spellings the user database takes for one account are one account for
every check: logging in, the per-account login limit, what notification and the sweep ask
auth (GET /users/<address>), and MariaDB's own comparison; and no other spelling reaches it.

Generated spellings of a registered address mix what a collation forgives (case, full width,
accents, invisible characters, look-alike letters of other alphabets, surrounding spaces);
auth runs as its Flask app on the real MariaDB, the gateway's limit key is computed in a real
request context."""

from __future__ import annotations

import base64
import secrets
import unicodedata
import urllib.parse

import MySQLdb
import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth import create_app
from common.addresses import try_canonical
from gateway.ratelimit import login_account
from tests.integration.auth.conftest import Runner, auth_config, smtp_settings

pytestmark = pytest.mark.security

PASSWORD = "correct horse battery"
CYRILLIC = {"a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e", "p": "\u0440",
            "x": "\u0445", "i": "\u0456"}
INVISIBLE = {"zero width space": "\u200b", "soft hyphen": "\u00ad", "word joiner": "\u2060",
             "bidi isolate": "\u2066", "bidi pop": "\u202c"}


def _before(mark: str):
    return lambda c: mark + c


def _full_width(c: str) -> str:
    return chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c


TRANSFORMS = {
    "keep": lambda c: c,
    "upper": str.upper,
    "full width": _full_width,
    "accent": lambda c: unicodedata.normalize("NFC", c + "\u0301") if c.isalpha() else c,
    "cyrillic": lambda c: CYRILLIC.get(c, c),
    **{f"{name} before": _before(mark) for name, mark in INVISIBLE.items()},
}
SAME_ADDRESS = ["keep", "upper", "full width"]  # what the canonical form forgives


@pytest.fixture(scope="module")
def auth(mysql_db, mailsink):
    """auth's app on the real MariaDB, and one registered, confirmed account."""
    app = create_app({"AUTH": auth_config(mysql_db, smtp_settings(mailsink.host, mailsink.port)),
                      "TESTING": True})
    assert Runner(app).invoke(args=["init-db"]).exit_code == 0
    email = f"dev{secrets.token_hex(3)}@example.com"
    runner = Runner(app)
    created = runner.invoke(args=["create-user", email, "--password-stdin"], input=PASSWORD + "\n")
    assert created.exit_code == 0, created.output
    client = app.test_client()
    account_id = client.get(f"/users/{email}").get_json()["account_id"]
    return client, email, account_id, mysql_db


def _limit_key(spelling: str) -> str:
    """The gateway's per-account login limit key for HTTP Basic ``spelling:password``."""
    raw = base64.b64encode(f"{spelling}:{PASSWORD}".encode()).decode()
    with Flask(__name__).test_request_context(headers={"Authorization": f"Basic {raw}"}):
        return login_account()


def _collation_match(mysql_db: dict, spelling: str) -> str | None:
    """The account MariaDB itself matches to the spelling, as written."""
    conn = MySQLdb.connect(host=mysql_db["MYSQL_HOST"], port=int(mysql_db["MYSQL_PORT"]),
                           user=mysql_db["MYSQL_USER"], passwd=mysql_db["MYSQL_PASSWORD"],
                           db=mysql_db["MYSQL_DB"], charset="utf8mb4")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT account_id FROM users WHERE email = %s", (spelling,))
            row = cur.fetchone()
    finally:
        conn.close()
    return row[0] if row else None


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_one_account_for_every_check_whatever_the_spelling(auth, data):
    client, email, account_id, mysql_db = auth
    # Half the spellings only use what the canonical form forgives, half mix in the rest.
    choices = sorted(TRANSFORMS) if data.draw(st.booleans()) else SAME_ADDRESS
    steps = data.draw(st.lists(st.sampled_from(choices), min_size=len(email),
                               max_size=len(email)))
    padding = data.draw(st.sampled_from(["", " ", "\t"]))
    spelling = padding + "".join(TRANSFORMS[step](c)
                                 for c, step in zip(email, steps, strict=True)) + padding
    same = try_canonical(spelling) == email
    basic = base64.b64encode(f"{spelling}:{PASSWORD}".encode()).decode()
    login = client.post("/login", headers={"Authorization": f"Basic {basic}"})
    assert login.status_code == (200 if same else 401), spelling
    looked_up = client.get(f"/users/{urllib.parse.quote(spelling, safe='@')}")
    assert (looked_up.status_code == 200) == same, spelling
    if same:
        assert looked_up.get_json()["account_id"] == account_id
    assert (_limit_key(spelling) == _limit_key(email)) == same, spelling
    match = _collation_match(mysql_db, spelling)
    assert match is None or (match == account_id and same), spelling
