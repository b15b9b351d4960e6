"""Deleting as an attacker: another user's jobs, an account with a stolen token, a password
guessed through DELETE /account, and the token of an account that was deleted."""

from __future__ import annotations

import secrets

import pytest
import requests
from bson import ObjectId

from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.storage import call, owned, user_row

pytestmark = pytest.mark.security

PASSWORD = "correct horse battery"
WEB = ("auth", "gateway")


def test_guessed_job_ids_delete_nothing_and_reveal_nothing(stack, media):
    victim, victim_jwt = stack.user(PASSWORD)
    _, attacker = stack.user(PASSWORD)
    _, accepted = classic_upload(stack, victim_jwt, media("mov"))
    job = wait_for_job(stack, victim_jwt, accepted["job_id"])
    stored = owned(stack, stack.account_id(victim_jwt))

    real = call(stack, "DELETE", f"/jobs/{job['job_id']}", attacker)
    made_up = call(stack, "DELETE", f"/jobs/{ObjectId()}", attacker)
    assert real.status_code == made_up.status_code == 404
    assert real.json() == made_up.json() == {"error": "no such job"}
    for forged in ("Bearer not.a.jwt", f"Bearer {victim_jwt[:-4]}AAAA", f"Basic {victim_jwt}"):
        resp = call(stack, "DELETE", f"/jobs/{job['job_id']}",
                    headers={"Authorization": forged})
        assert resp.status_code == 401, (forged, resp.text)
    assert owned(stack, stack.account_id(victim_jwt)) == stored
    assert call(stack, "GET", f"/jobs/{job['job_id']}", victim_jwt).json()["status"] == "done"


def test_a_stolen_token_alone_cannot_delete_the_account(stack, media):
    victim, jwt = stack.user(PASSWORD)
    _, attacker_jwt = stack.user(PASSWORD)
    _, accepted = classic_upload(stack, jwt, media("mov"))
    wait_for_job(stack, jwt, accepted["job_id"])
    stored = owned(stack, stack.account_id(jwt))
    attempts = [
        {"headers": {"Authorization": f"Bearer {jwt}"}},  # no password
        {"headers": {"Authorization": f"Bearer {jwt}"}, "json": {"password": "guess"}},
        {"headers": {"Authorization": f"Bearer {jwt}"}, "data": "password=" + PASSWORD},
        # the attacker's own password with the victim's token, and the other way round
        {"headers": {"Authorization": f"Bearer {jwt}"}, "json": {"password": "x" + PASSWORD}},
        {"headers": {"Authorization": f"Bearer {attacker_jwt}"}, "json": {"email": victim,
                                                                          "password": "x"}},
        {"auth": (victim, "")},
    ]
    for kwargs in attempts:
        resp = requests.delete(f"{stack.gateway_url}/account", timeout=30, **kwargs)
        assert resp.status_code in (400, 401), (kwargs, resp.status_code, resp.text)
        assert resp.json()["error"]
    assert user_row(stack, victim) is not None
    assert owned(stack, stack.account_id(jwt)) == stored
    assert call(stack, "GET", "/account", jwt).status_code == 200


@pytest.mark.parametrize("credentials", ["basic", "bearer"])
def test_guessing_the_password_through_account_deletion_is_rate_limited(stack_factory,
                                                                        credentials):
    stack = stack_factory(services=WEB, LOGIN_RATE_LIMIT_PER_ACCOUNT="3 per minute",
                          AUTH_TIMEOUT_SECONDS="60")
    victim, jwt = stack.user(PASSWORD)
    url = f"{stack.gateway_url}/account"

    def guess():
        word = secrets.token_hex(6)
        if credentials == "basic":
            return requests.delete(url, auth=(victim, word), timeout=60)
        return requests.delete(url, headers={"Authorization": f"Bearer {jwt}"},
                               json={"password": word}, timeout=60)

    statuses = [guess().status_code for _ in range(2)]  # the login above counted too
    limited = guess()
    assert statuses == [401, 401] and limited.status_code == 429, (statuses, limited.text)
    assert int(limited.headers["Retry-After"]) >= 1
    # The right password is refused too while the limit holds, as for /login.
    resp = requests.delete(url, auth=(victim, PASSWORD), timeout=60)
    assert resp.status_code == 429
    assert requests.post(f"{stack.gateway_url}/login", auth=(victim, PASSWORD),
                         timeout=60).status_code == 429
    assert user_row(stack, victim) is not None


def test_the_token_of_a_deleted_account_opens_nothing(stack, media):
    email, jwt = stack.user(PASSWORD)
    _, accepted = classic_upload(stack, jwt, media("mov"))
    job = wait_for_job(stack, jwt, accepted["job_id"])
    assert requests.delete(f"{stack.gateway_url}/account", auth=(email, PASSWORD),
                           timeout=30).status_code == 204
    for method, path in (("GET", "/jobs"), ("GET", "/account"), ("DELETE", "/account"),
                         ("DELETE", f"/jobs/{job['job_id']}"), ("POST", "/upload"),
                         ("GET", f"/download?fid={job['mp3_fid']}"),
                         ("GET", f"/jobs/{job['job_id']}/download-url")):
        resp = call(stack, method, path, jwt, **({"json": {"password": PASSWORD}}
                                                 if path == "/account" and method == "DELETE"
                                                 else {}))
        assert resp.status_code == 401, (method, path, resp.status_code, resp.text)
