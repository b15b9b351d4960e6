"""Deleting an account: the MySQL row, every job and file of the user go, and their tokens stop
working; by the user (DELETE /account) or by an operator (delete-user, then the sweep)."""


import pytest
import requests

from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.storage import NOTHING, auth_command, call, database, owned, sweep, user_row

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery"
GONE = "this account no longer exists: register again to use the service"


def user_with_jobs(stack, media, kinds=("mov", "mkv_mp3")) -> tuple[str, str, list[dict]]:
    """A new user whose uploads of ``kinds`` are converted; (email, jwt, jobs)."""
    email, jwt = stack.user(PASSWORD)
    ids = [classic_upload(stack, jwt, media(kind))[1]["job_id"] for kind in kinds]
    jobs = [wait_for_job(stack, jwt, job_id) for job_id in ids]
    assert all(job["status"] == "done" for job in jobs), jobs
    return email, jwt, jobs


def assert_account_gone(stack, email: str, jwt: str, jobs: list[dict]) -> None:
    """No row, no job, no file; the old token and the password no longer work."""
    assert user_row(stack, email) is None
    assert owned(stack, stack.account_id(jwt)) == NOTHING
    for path in ("/jobs", "/account", f"/jobs/{jobs[0]['job_id']}"):
        resp = call(stack, "GET", path, jwt)
        assert resp.status_code == 401 and resp.json() == {"error": GONE}, (path, resp.text)
    assert call(stack, "GET", f"/download?fid={jobs[0]['mp3_fid']}", jwt).status_code == 401
    assert requests.post(f"{stack.gateway_url}/login", auth=(email, PASSWORD),
                         timeout=30).status_code == 401


def test_delete_account_with_basic_credentials_removes_everything_of_that_user_only(
        stack_factory, media):
    stack = stack_factory(KEEP_SOURCE_VIDEOS="true")  # videos and MP3s both stored
    email, jwt, jobs = user_with_jobs(stack, media)
    other_email, other_jwt, other_jobs = user_with_jobs(stack, media, ("mov",))
    stored = owned(stack, stack.account_id(jwt))
    # each job's MP3 and its cover picture (a file of its own)
    assert stored["jobs"] == 2 and stored["videos.files"] == 2 and stored["mp3s.files"] == 4
    link = call(stack, "GET", f"/jobs/{jobs[0]['job_id']}/download-url", jwt).json()["url"]

    wrong = requests.delete(f"{stack.gateway_url}/account", auth=(email, "not my password"),
                            timeout=30)
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "wrong password: the account was not deleted"}
    assert user_row(stack, email) is not None
    assert owned(stack, stack.account_id(jwt)) == stored
    assert call(stack, "GET", "/account", jwt).status_code == 200

    resp = requests.delete(f"{stack.gateway_url}/account", auth=(email, PASSWORD), timeout=30)
    assert resp.status_code == 204 and resp.content == b""
    assert_account_gone(stack, email, jwt, jobs)
    assert requests.get(f"{stack.gateway_url}{link}", timeout=10).status_code == 404
    # A second time there is no such account.
    again = requests.delete(f"{stack.gateway_url}/account", auth=(email, PASSWORD), timeout=30)
    assert again.status_code == 401

    # The other user keeps everything.
    assert user_row(stack, other_email) is not None
    assert owned(stack, stack.account_id(other_jwt))["mp3s.files"] == 2  # MP3 and cover
    resp = call(stack, "GET", f"/download?fid={other_jobs[0]['mp3_fid']}", other_jwt)
    assert resp.status_code == 200 and len(resp.content) == other_jobs[0]["mp3_size"]


def test_delete_account_with_token_and_password_in_json(stack, media):
    email, jwt, jobs = user_with_jobs(stack, media, ("mov",))
    for body, status in (({}, 400), ({"password": ""}, 400), ({"password": "guess"}, 401)):
        resp = call(stack, "DELETE", "/account", jwt, json=body)
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]
    assert call(stack, "DELETE", "/account", jwt).status_code == 400  # no body at all
    assert user_row(stack, email) is not None
    assert owned(stack, stack.account_id(jwt))["mp3s.files"] == 2  # the MP3 and its cover

    resp = call(stack, "DELETE", "/account", jwt, json={"password": PASSWORD})
    assert resp.status_code == 204, resp.text
    assert_account_gone(stack, email, jwt, jobs)


def test_operator_deletes_a_user_and_the_sweep_removes_their_files(stack_factory, media):
    stack = stack_factory()
    email, jwt, jobs = user_with_jobs(stack, media)
    other_email, other_jwt, _ = user_with_jobs(stack, media, ("mov",))
    for token in (jwt, other_jwt):  # their webhooks go with the account, not the others'
        hook = call(stack, "POST", "/webhooks", token, json={"url": "https://93.184.216.34/h"})
        assert hook.status_code == 201, hook.text

    result = auth_command(stack, "delete-user", email.upper())
    assert result.returncode == 0, result.stderr
    assert "removed by the next sweep" in result.stdout
    assert user_row(stack, email) is None
    resp = call(stack, "GET", "/jobs", jwt)  # the token stops working at once
    assert resp.status_code == 401 and resp.json() == {"error": GONE}
    assert owned(stack, stack.account_id(jwt))["mp3s.files"] == 4  # they wait for the sweep

    # The address is registered again before the sweep, in the same second: a new account,
    # whose job stays, and which never sees the old one's.
    stack.register(email, PASSWORD)
    new_jwt = stack.login(email, PASSWORD)
    _, fresh = classic_upload(stack, new_jwt, media("mov"))
    assert wait_for_job(stack, new_jwt, fresh["job_id"])["status"] == "done"
    assert call(stack, "GET", "/jobs", jwt).status_code == 401  # the old token still not

    counts = sweep(stack)
    assert counts["deleted_accounts_jobs"] == 2, counts
    [kept] = call(stack, "GET", "/jobs", new_jwt).json()["jobs"]
    assert kept["job_id"] == fresh["job_id"]
    assert owned(stack, stack.account_id(jwt)) == NOTHING
    left = owned(stack, stack.account_id(new_jwt))
    assert left["jobs"] == 1 and left["mp3s.files"] == 2  # the MP3 and its cover
    assert call(stack, "GET", f"/download?fid={kept['mp3_fid']}", new_jwt).status_code == 200
    assert owned(stack, stack.account_id(other_jwt))["mp3s.files"] == 2
    with database(stack) as db:
        assert db["webhooks"].count_documents({"owner": stack.account_id(jwt)}) == 0
        assert db["webhooks"].count_documents({"owner": stack.account_id(other_jwt)}) == 1
    assert sweep(stack)["deleted_accounts_jobs"] == 0

    missing = auth_command(stack, "delete-user", "nobody-here@example.com")
    assert missing.returncode != 0 and "no user" in missing.stderr
