"""Registering someone else's address must not make the service mail them: only an address its
owner confirmed through the emailed, signed, expiring link receives job emails; the link's token
is good for nothing else, and nobody can forge one."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
import requests
from bson import ObjectId
from pymongo import MongoClient

from auth import tokens
from tests.e2e.api import classic_upload, wait_for_job
from tools import devstack
from tools.processes import ROOT, free_port

pytestmark = pytest.mark.security

PASSWORD = "correct horse battery"
VERIFY_SUBJECT = "Confirm your email address for mp3converter"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SHOTS = ROOT / "test-output" / "browser"


def claims(token: str) -> dict:
    """A JWT's payload, read without checking it, as the web page does."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def wait_log(process, *needles: str, timeout: float = 60.0) -> dict:
    """The first JSON log line of ``process`` containing every needle."""
    deadline = time.monotonic() + timeout
    while True:
        for line in process.log_text().splitlines():
            if line.startswith("{") and all(n in line for n in needles):
                return json.loads(line)
        if time.monotonic() > deadline:
            raise AssertionError(f"{process.name} never logged {needles}:\n{process.log_tail()}")
        time.sleep(0.2)


def job_record(stack, job_id: str) -> dict:
    """The job as stored in MongoDB (with the fields the API does not show)."""
    client = MongoClient(stack.env["MONGODB_URI"])
    try:
        return client[stack.env["MONGODB_DB"]]["jobs"].find_one({"_id": ObjectId(job_id)})
    finally:
        client.close()


def register(gateway_url: str, email: str) -> requests.Response:
    return requests.post(f"{gateway_url}/register", json={"email": email, "password": PASSWORD},
                         timeout=30)


def test_an_unverified_address_gets_no_job_email_and_a_verified_one_does(stack, mailsink, media):
    victim, victim_jwt = stack.user(verified=False)  # registered by someone else
    owner, owner_jwt = stack.user()
    assert claims(victim_jwt)["verified"] is False and claims(owner_jwt)["verified"] is True

    done = {}
    for email, token in ((victim, victim_jwt), (owner, owner_jwt)):
        status, accepted = classic_upload(stack, token, media("mkv_mp3"))
        assert status == 202, accepted  # an unverified account converts all the same
        done[email] = wait_for_job(stack, token, accepted["job_id"])
        assert done[email]["status"] == "done", done[email]
    status, accepted = classic_upload(stack, victim_jwt, media("no_audio"))
    failed = wait_for_job(stack, victim_jwt, accepted["job_id"])
    assert failed["status"] == "failed"

    [mail] = mailsink.wait_for(1, to=owner)
    assert done[owner]["mp3_fid"] in mail.get_body(("plain",)).get_content()
    for job in (done[victim], failed):
        line = wait_log(stack.processes["notification"], job["job_id"], "address not verified")
        assert line["account"] == stack.account_id(victim_jwt)
        record = job_record(stack, job["job_id"])
        assert record["notification"] == "skipped: address not verified"
        assert record.get("notified_at") is None
    time.sleep(1)
    assert [m["Subject"] for m in mailsink.messages(to=victim)] == [VERIFY_SUBJECT]


def test_the_emailed_link_confirms_the_address_and_twice_is_harmless(stack, mailsink, media):
    email, before = stack.user(verified=False)
    link = mailsink.verification_link(email)
    assert link.startswith(f"{stack.gateway_url}/verify?token=")
    for _ in range(2):
        resp = requests.get(link, timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"email": email, "verified": True}
    page = requests.get(link, headers={"Accept": BROWSER}, allow_redirects=False, timeout=30)
    assert page.status_code == 303 and page.headers["Location"] == "/#verified"
    assert page.headers["Referrer-Policy"] == "no-referrer"

    after = stack.login(email, PASSWORD)
    assert claims(after)["verified"] is True
    # The old login token (verified: false) makes no difference: notification asks auth.
    status, accepted = classic_upload(stack, before, media("mkv_mp3"))
    assert status == 202
    job = wait_for_job(stack, before, accepted["job_id"])
    [mail] = [m for m in mailsink.wait_for(2, to=email) if m["Subject"] != VERIFY_SUBJECT]
    assert job["mp3_fid"] in mail.get_body(("plain",)).get_content()

    token = link.split("token=", 1)[1]
    for name in ("gateway", "auth"):
        assert token not in stack.processes[name].log_text(), f"the token is in {name}'s log"


def _forgeries(stack, email: str, account_id: str) -> dict[str, str]:
    """Verification tokens an attacker can make without the mailbox."""
    genuine = tokens.issue_verify("an attacker's guess at the key, 32+ bytes", account_id,
                                  email, 3600)
    header, payload, signature = genuine.split(".")
    victim_payload = base64.urlsafe_b64encode(
        json.dumps({**claims(genuine), "email": "victim@example.com"}).encode()).rstrip(b"=")
    none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return {
        "signed with another key": genuine,
        "payload swapped": f"{header}.{victim_payload.decode()}.{signature}",
        "alg none": f"{none}.{payload}.",
        "login token": stack.login(email, PASSWORD),
        "garbage": "not-a-token",
    }


def test_forged_tampered_and_login_tokens_do_not_verify(stack, mailsink):
    email, jwt = stack.user(verified=False)
    for name, forged in _forgeries(stack, email, stack.account_id(jwt)).items():
        resp = requests.get(f"{stack.gateway_url}/verify", params={"token": forged}, timeout=30)
        assert resp.status_code == 400, (name, resp.text)
        assert "verification link is not valid" in resp.json()["error"], name
        page = requests.get(f"{stack.gateway_url}/verify", params={"token": forged},
                            headers={"Accept": BROWSER}, allow_redirects=False, timeout=30)
        assert page.headers["Location"] == "/#verify-failed", name
    missing = requests.get(f"{stack.gateway_url}/verify", timeout=30)
    assert missing.status_code == 400 and "missing token" in missing.json()["error"]
    assert claims(stack.login(email, PASSWORD))["verified"] is False


def test_a_verification_token_is_not_a_login_token(stack, mailsink):
    email, _ = stack.user(verified=False)
    verify_token = mailsink.verification_link(email).split("token=", 1)[1]
    bearer = {"Authorization": f"Bearer {verify_token}"}
    for method, path in (("GET", "/jobs"), ("POST", "/upload"), ("POST", "/verify/resend")):
        resp = requests.request(method, f"{stack.gateway_url}{path}", headers=bearer, timeout=30)
        assert resp.status_code == 401, (path, resp.text)
        assert resp.json()["error"], path


def test_an_expired_link_is_refused_with_a_clear_message(stack_factory, mailsink):
    web = stack_factory(services=("auth", "gateway"), VERIFY_TOKEN_TTL_SECONDS="1")
    email = f"late-{free_port()}-{time.time_ns()}@example.com"
    assert register(web.gateway_url, email).status_code == 201
    link = mailsink.verification_link(email)
    expires = jwt.decode(link.split("token=", 1)[1], options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires - time.time()) + 1.5)
    resp = requests.get(link, timeout=30)
    assert resp.status_code == 410
    assert resp.json() == {"error": "this verification link has expired: log in and ask for a "
                                    "new one"}
    page = requests.get(link, headers={"Accept": BROWSER}, allow_redirects=False, timeout=30)
    assert page.headers["Location"] == "/#verify-expired"
    assert claims(web.login(email, PASSWORD))["verified"] is False


def test_resending_is_capped_per_account(stack, mailsink):
    email, token = stack.user(verified=False)
    resp = requests.post(f"{stack.gateway_url}/verify/resend",
                         headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert resp.status_code == 429, resp.text
    assert 1 <= int(resp.headers["Retry-After"]) <= 300
    assert "check your inbox" in resp.json()["error"]
    confirmed, confirmed_token = stack.user()
    resp = requests.post(f"{stack.gateway_url}/verify/resend",
                         headers={"Authorization": f"Bearer {confirmed_token}"}, timeout=30)
    assert resp.status_code == 409 and "already confirmed" in resp.json()["error"]
    time.sleep(1)
    assert [m["Subject"] for m in mailsink.messages(to=email)] == [VERIFY_SUBJECT]
    assert mailsink.messages(to=confirmed) == []  # its one verification email was read


def test_mail_server_down_registration_is_503_keeps_nothing_and_can_be_retried(
        stack_factory, service_dirs):
    smtp_port = free_port()
    web = stack_factory(services=("auth", "gateway"), SMTP_PORT=str(smtp_port),
                        VERIFY_RESEND_SECONDS="0")
    email = f"retry-{time.time_ns()}@example.com"
    resp = register(web.gateway_url, email)
    assert resp.status_code == 503 and resp.json()["error"].endswith("try again shortly")
    wait_log(web.processes["auth"], "verification email not sent", email)
    assert requests.post(f"{web.gateway_url}/login", auth=(email, PASSWORD),
                         timeout=30).status_code == 401  # nothing was kept

    sink_dir = service_dirs.new("late-mailsink")
    sink = devstack.mailsink_process({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port)},
                                     sink_dir)
    sink.start().wait_ready(30)
    try:
        assert register(web.gateway_url, email).status_code == 201
        deadline = time.monotonic() + 30
        while not list((sink_dir / "mail").glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.2)
        [stored] = list((sink_dir / "mail").glob("*.eml"))
        assert f"{web.gateway_url}/verify?token=" in stored.read_text()
    finally:
        sink.terminate(10)


@pytest.mark.browser
def test_the_page_asks_for_confirmation_and_reports_each_outcome(stack, mailsink):
    from playwright.sync_api import expect, sync_playwright

    email = f"page-{time.time_ns()}@example.com"
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: "Security Policy" in msg.text and errors.append(
                msg.text))
            page.goto(f"{stack.gateway_url}/")
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Create account").click()
            notice = page.locator("#notice")
            expect(notice).to_contain_text("Check your inbox to confirm your email")
            page.get_by_role("button", name="Log in").click()
            banner = page.get_by_role("region", name="Address confirmation")
            expect(banner).to_contain_text("Confirm your email to be notified")
            banner.get_by_role("button", name="Send the link again").click()
            expect(notice).to_contain_text("A verification email was sent less than")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "verify-01-banner.png"), full_page=True)

            page.goto(mailsink.verification_link(email))
            expect(notice).to_contain_text("Your email address is confirmed")
            assert page.url == f"{stack.gateway_url}/", "the token leaves the address bar"
            expect(banner).to_be_hidden()
            page.screenshot(path=str(SHOTS / "verify-02-confirmed.png"), full_page=True)

            account_id = stack.account_id(stack.login(email, PASSWORD))
            expired = tokens.issue_verify(stack.env["JWT_SECRET"], account_id, email, -60)
            for token, text in ((expired, "This confirmation link has expired"),
                                ("forged.link.token", "This confirmation link is not valid")):
                page.goto(f"{stack.gateway_url}/verify?token={token}")
                expect(notice).to_contain_text(text)
                expect(notice).to_have_attribute("data-kind", "error")
        finally:
            browser.close()
    assert errors == [], "no script errors and nothing blocked by the Content-Security-Policy"
