"""One address, one account: spellings of an address that a database collation would take for
the same (accents, case, width, invisible characters, look-alike letters) never let a stranger
verify an address, dodge the per-account login limit or inherit a deleted account's files."""

from __future__ import annotations

import secrets

import pytest
import requests

from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.storage import NOTHING, call, owned

pytestmark = pytest.mark.security

PASSWORD = "correct horse battery"
ATTACKER_PASSWORD = "attacker's own password"


def _address(domain: str = "example.com") -> str:
    return f"victim-{secrets.token_hex(4)}@{domain}"


def _register(stack, email: str, password: str) -> requests.Response:
    return requests.post(f"{stack.gateway_url}/register",
                         json={"email": email, "password": password}, timeout=30)


def _basic(email: str, password: str) -> tuple[bytes, bytes]:
    """HTTP Basic credentials in UTF-8, as curl and browsers send them."""
    return email.encode(), password.encode()


def _login(stack, email: str, password: str) -> requests.Response:
    return requests.post(f"{stack.gateway_url}/login", auth=_basic(email, password), timeout=30)


def _delete(stack, email: str, password: str) -> requests.Response:
    return requests.delete(f"{stack.gateway_url}/account", auth=_basic(email, password),
                           timeout=30)


def test_a_link_sent_to_a_look_alike_address_never_verifies_the_real_one(stack, mailsink):
    victim = _address()
    look_alike = victim.replace("example.com", "exämple.com")  # the attacker owns this domain
    assert _register(stack, look_alike, ATTACKER_PASSWORD).status_code == 201
    link = mailsink.verification_link(look_alike)
    assert _delete(stack, look_alike, ATTACKER_PASSWORD).status_code == 204
    # The attacker now registers the victim's real address with a password of their choosing,
    # and opens the link they received for the look-alike.
    assert _register(stack, victim, ATTACKER_PASSWORD).status_code == 201
    opened = requests.get(link, timeout=30)
    assert opened.status_code == 400, opened.text
    assert "no longer exists" in opened.json()["error"]
    jwt = stack.login(victim, ATTACKER_PASSWORD)
    account = call(stack, "GET", "/account", jwt).json()
    assert account["email"] == victim and account["verified"] is False

    # Even a link of the very same address is void once its account is deleted.
    stack_link = mailsink.verification_link(victim)
    assert _delete(stack, victim, ATTACKER_PASSWORD).status_code == 204
    assert _register(stack, victim, PASSWORD).status_code == 201
    assert requests.get(stack_link, timeout=30).status_code == 400
    fresh = stack.login(victim, PASSWORD)
    assert call(stack, "GET", "/account", fresh).json()["verified"] is False


def test_spellings_of_a_locked_account_are_locked_too_or_are_not_that_account(stack_factory):
    stack = stack_factory(LOGIN_RATE_LIMIT_PER_ACCOUNT="5 per minute",
                          LOGIN_RATE_LIMIT_PER_ADDRESS="1000 per minute")
    local = f"dev{secrets.token_hex(3)}"
    email = f"{local}@example.com"
    stack.register(email, PASSWORD)
    for _ in range(5):
        assert _login(stack, email, "a wrong guess").status_code == 401
    assert _login(stack, email, PASSWORD).status_code == 429
    width = "".join(chr(ord(c) + 0xFEE0) for c in local)  # full-width letters and digits
    same_account = [email.upper(), f" {email} ", f"{width}@example.com",
                    f"{local}@EXAMPLE.com"]
    other_addresses = [f"{local}@exämple.com", f"d\u00e9{local[2:]}@example.com",
                       f"{local}@examp\u0142e.com"]
    refused = [f"{local}\u200b@example.com", f"{local}@ex\u0430mple.com",  # Cyrillic а
               f"{local}\u00ad@example.com", f"\u202e{local}@example.com"]
    for spelling in same_account:
        assert _login(stack, spelling, PASSWORD).status_code == 429, spelling
    for spelling in other_addresses + refused:
        # Not this account: no amount of guessing under these names ever logs into it.
        assert _login(stack, spelling, PASSWORD).status_code == 401, spelling
    for spelling in refused:
        resp = _register(stack, spelling, PASSWORD)
        assert resp.status_code == 422 and "invalid email" in resp.json()["error"], spelling


def test_a_deleted_accounts_files_never_pass_to_the_next_registrant(stack, media):
    victim = _address()
    stack.register(victim, PASSWORD)
    jwt = stack.login(victim, PASSWORD)
    _, accepted = classic_upload(stack, jwt, media("mkv_mp3"))
    job = wait_for_job(stack, jwt, accepted["job_id"])
    assert job["status"] == "done", job
    old_id = stack.account_id(jwt)

    # A spelling a collation would match deletes nothing: it is not the account.
    for variant in (victim.replace("example.com", "exämple.com"),
                    victim.replace("victim", "v\u0456ctim")):  # Cyrillic і
        assert _delete(stack, variant, PASSWORD).status_code == 401, variant
    assert owned(stack, old_id)["mp3s.files"] == 2  # the MP3 and its cover picture

    # Deleted under a spelling of the same address (upper case, full width): everything goes.
    shouted = "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c
                      for c in victim.split("@")[0].upper()) + "@EXAMPLE.COM"
    assert _delete(stack, shouted, PASSWORD).status_code == 204
    assert owned(stack, old_id) == NOTHING

    # Whoever registers the address next, at once, is a new account that sees nothing old.
    assert _register(stack, victim, ATTACKER_PASSWORD).status_code == 201
    stack.verify(victim)
    new_jwt = stack.login(victim, ATTACKER_PASSWORD)
    assert stack.account_id(new_jwt) != old_id
    assert call(stack, "GET", "/jobs", new_jwt).json() == {"jobs": [], "next": None}
    for path in (f"/jobs/{job['job_id']}", f"/download?fid={job['mp3_fid']}"):
        assert call(stack, "GET", path, new_jwt).status_code == 404, path
    assert call(stack, "GET", "/jobs", jwt).status_code == 401  # the old token stays dead
