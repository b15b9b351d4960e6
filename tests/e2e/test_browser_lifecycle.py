"""The web page and the files' lifecycle, in Debian's Chromium against real stacks: deleting a
conversion, storage used against the quota, refused uploads, expired MP3s, deleting the account.
Screenshots in test-output/browser."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time

import pymongo
import pytest
import requests
from playwright.sync_api import Page, expect

from common.store import MP3S, VIDEOS
from tests.e2e.test_browser import (
    CONVERSION_TIMEOUT_MS,
    PASSWORD,
    UNLABELLED,
    Shots,
    _choose_files,
    _job_row,
)
from tools.processes import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def shown_size(n_bytes: int) -> str:
    """A size as the page writes it against the quota: "0 bytes", "49 KB", "1.2 GB", "5 GB"."""
    units = ["bytes", "KB", "MB", "GB", "TB"]
    value, unit = float(n_bytes), 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    if unit == 0:
        return f"{n_bytes} bytes"
    return (f"{value:.1f}" if value < 10 else f"{value:.0f}").removesuffix(".0") + f" {units[unit]}"


def _log_in(page: Page, url: str, email: str) -> None:
    page.goto(f"{url}/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()


def _api(stack, method: str, path: str, token: str) -> requests.Response:
    return requests.request(method, f"{stack.gateway_url}{path}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _account(stack, token: str) -> dict:
    response = _api(stack, "GET", "/account", token)
    assert response.status_code == 200, response.text
    return response.json()


def _usage_text(stack, token: str) -> str:
    account = _account(stack, token)
    return f"{shown_size(account['usage']['bytes'])} of {shown_size(account['quota']['bytes'])}"


def _watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: "Security Policy" in msg.text and errors.append(msg.text))
    return errors


def test_delete_conversions_from_their_cards(stack, media, page):
    shot = Shots(page, "delete")
    errors = _watch_errors(page)
    email, token = stack.user(PASSWORD)
    _log_in(page, stack.gateway_url, email)
    usage = page.locator("#usage-text")
    expect(usage).to_have_text("0 bytes of 5 GB")

    first, second = media("mkv_mp3"), media("mov")
    _choose_files(page, first, second)
    for path in (first, second):
        expect(_job_row(page, path.name)).to_have_attribute(
            "data-status", "done", timeout=CONVERSION_TIMEOUT_MS)
    jobs = {job["filename"]: job for job in _api(stack, "GET", "/jobs", token).json()["jobs"]}
    for path in (first, second):
        kept = _job_row(page, path.name).locator(".job-expires time")
        expect(kept).to_have_attribute("datetime", jobs[path.name]["expires_at"])
    # The storage used is the two MP3s (the videos are gone once converted).
    expect(usage).to_have_text(_usage_text(stack, token))
    assert _account(stack, token)["usage"]["bytes"] == sum(
        jobs[p.name]["mp3_size"] for p in (first, second))
    assert page.evaluate(UNLABELLED) == []
    shot("two-done")

    # Asked first; "Keep it" keeps it.
    row = _job_row(page, first.name)
    row.get_by_role("button", name=f"Delete {first.name}").click()
    confirm = row.get_by_role("group", name=f"Confirm deleting {first.name}")
    expect(confirm).to_contain_text(f"Delete {first.name} and its MP3? This cannot be undone.")
    expect(confirm.get_by_role("button", name="Keep it")).to_be_focused()
    shot("asked")
    confirm.get_by_role("button", name="Keep it").click()
    expect(confirm).to_have_count(0)
    expect(row.get_by_role("button", name=f"Delete {first.name}")).to_be_focused()
    expect(page.locator("li.job")).to_have_count(2)

    row.get_by_role("button", name=f"Delete {first.name}").click()
    row.get_by_role("button", name="Yes, delete").click()
    expect(row).to_have_count(0)
    expect(page.locator("#notice")).to_have_text(f"Deleted {first.name}.")
    deleted = jobs[first.name]
    assert _api(stack, "GET", f"/jobs/{deleted['job_id']}", token).status_code == 404
    assert _api(stack, "GET", f"/download?fid={deleted['mp3_fid']}", token).status_code == 404
    expect(usage).to_have_text(_usage_text(stack, token))
    assert _account(stack, token)["usage"]["bytes"] == jobs[second.name]["mp3_size"]
    shot("first-deleted")

    # With the keyboard: Escape cancels, Shift+Tab reaches "Yes, delete".
    delete = _job_row(page, second.name).get_by_role("button", name=f"Delete {second.name}")
    delete.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Keep it")).to_be_focused()
    page.keyboard.press("Escape")
    expect(delete).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Yes, delete")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("li.job")).to_have_count(0)
    expect(page.locator("#jobs-title")).to_be_focused()
    expect(page.locator("#jobs-note")).to_contain_text("No conversions yet")
    expect(usage).to_have_text("0 bytes of 5 GB")
    assert _api(stack, "GET", "/jobs", token).json() == {"jobs": [], "next": None}
    # The list is polled: a deleted card does not come back.
    page.wait_for_timeout(3000)
    expect(page.locator("li.job")).to_have_count(0)
    assert errors == []
    shot("all-deleted")


def test_quota_refusals_and_a_failed_delete_are_explained(stack_factory, media, page):
    shot = Shots(page, "quota")
    waiting, second, large = media("webm_opus"), media("mov"), media("mp4_aac51")
    quota = 90_000  # fits the first video; the large one does not fit even alone
    assert waiting.stat().st_size < quota < large.stat().st_size - 64 * 1024
    small = stack_factory(services=("auth", "gateway"), USER_MAX_ACTIVE_JOBS="1",
                          USER_STORAGE_QUOTA_BYTES=str(quota))
    email, token = small.user(PASSWORD)
    _log_in(page, small.gateway_url, email)
    usage = page.locator("#usage-text")
    expect(usage).to_have_text(f"0 bytes of {shown_size(quota)}")

    # No converter runs: the first upload stays queued, so the second is one too many.
    _choose_files(page, waiting, second)
    expect(_job_row(page, waiting.name)).to_have_attribute("data-status", "queued")
    refused = page.locator("li.upload").filter(has_text=second.name)
    expect(refused).to_have_attribute("data-state", "error", timeout=30_000)
    expect(refused.locator(".upload-message")).to_have_text(
        "Not uploaded: you have 1 conversion waiting or converting; try again when one finishes.")
    expect(usage).to_have_text(f"{shown_size(waiting.stat().st_size)} of {shown_size(quota)}")
    assert [j["filename"] for j in _api(small, "GET", "/jobs", token).json()["jobs"]] == [
        waiting.name]
    shot("too-many-active")

    # A delete that cannot be done says so, and the card stays.
    row = _job_row(page, waiting.name)
    small.services["auth"].terminate(10)
    row.get_by_role("button", name=f"Delete {waiting.name}").click()
    expect(row.get_by_role("group")).to_contain_text("Its conversion stops and nothing is kept.")
    row.get_by_role("button", name="Yes, delete").click()
    expect(row.locator(".job-problem")).to_have_text(
        f"Could not delete {waiting.name}: the service is unavailable right now. "
        "Try again in a moment.")
    expect(row.get_by_role("button", name=f"Delete {waiting.name}")).to_be_focused()
    shot("delete-failed")
    small.services["auth"].restart(60)
    row.get_by_role("button", name=f"Delete {waiting.name}").click()
    row.get_by_role("button", name="Yes, delete").click()
    expect(row).to_have_count(0)
    expect(usage).to_have_text(f"0 bytes of {shown_size(quota)}")

    _choose_files(page, large)
    refused = page.locator("li.upload").first
    expect(refused).to_have_attribute("data-state", "error", timeout=30_000)
    expect(refused.locator(".upload-message")).to_have_text(
        "Not uploaded: this upload does not fit in your storage quota: you use 0 bytes of "
        "87.9 KiB; delete some conversions or wait for their MP3s to expire.")
    assert _api(small, "GET", "/jobs", token).json() == {"jobs": [], "next": None}
    assert _account(small, token)["usage"] == {"bytes": 0, "active_jobs": 0}
    expect(usage).to_have_text(f"0 bytes of {shown_size(quota)}")
    shot("over-quota")


def test_an_expired_mp3_has_no_player(stack_factory, media, page):
    shot = Shots(page, "expired")
    retention_hours = 0.006  # 21.6 seconds
    short = stack_factory(MP3_RETENTION_HOURS=str(retention_hours))
    email, token = short.user(PASSWORD)
    _log_in(page, short.gateway_url, email)
    clip = media("mkv_mp3")
    _choose_files(page, clip)
    row = _job_row(page, clip.name)
    expect(row).to_have_attribute("data-status", "done", timeout=CONVERSION_TIMEOUT_MS)
    expect(row.locator("audio")).to_be_visible()
    [job] = _api(short, "GET", "/jobs", token).json()["jobs"]
    expect(row.locator(".job-expires time")).to_have_attribute("datetime", job["expires_at"])
    shot("done")

    expires = dt.datetime.fromisoformat(job["expires_at"]).timestamp()
    time.sleep(max(0.0, expires - time.time()) + 0.5)
    sweep = subprocess.run([sys.executable, "-m", "ops", "sweep"], env=short.env, cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert sweep.returncode == 0, sweep.stderr
    [job] = _api(short, "GET", "/jobs", token).json()["jobs"]
    assert job["status"] == "expired"

    expect(row).to_have_attribute("data-status", "expired")
    expect(row.locator(".job-status")).to_have_text("Expired")
    expect(row.locator(".job-note")).to_have_text(
        "This MP3 has expired and was deleted. Upload the video again to convert it once more.")
    expect(row.locator("audio")).to_have_count(0)
    expect(row.get_by_role("button", name=re.compile("^Download"))).to_have_count(0)
    expect(row.locator(".job-expires-label")).to_have_text("MP3 deleted on")
    expect(row.locator(".job-expires time")).to_have_attribute("datetime", job["expires_at"])
    expect(page.locator("#usage-text")).to_have_text("0 bytes of 5 GB")
    shot("expired")
    row.get_by_role("button", name=f"Delete {clip.name}").click()
    expect(row.get_by_role("group")).to_contain_text(f"Delete {clip.name}? This cannot be undone.")
    row.get_by_role("button", name="Yes, delete").click()
    expect(row).to_have_count(0)


def test_delete_the_account_from_its_panel(stack, media, page):
    shot = Shots(page, "account")
    errors = _watch_errors(page)
    email, token = stack.user(PASSWORD)
    _log_in(page, stack.gateway_url, email)
    clip = media("webm_opus")
    _choose_files(page, clip)
    expect(_job_row(page, clip.name)).to_have_attribute(
        "data-status", "done", timeout=CONVERSION_TIMEOUT_MS)

    toggle = page.get_by_role("button", name="Account", exact=True)
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    panel = page.get_by_role("region", name="Your account")
    expect(panel.get_by_role("heading", name="Your account")).to_be_focused()
    expect(panel.locator("#account-email")).to_have_text(email)
    expect(panel.locator("#account-verified")).to_have_text(re.compile("^Confirmed"))
    expect(panel.locator("#account-storage")).to_have_text(re.compile(
        rf"^{re.escape(_usage_text(stack, token))} \(\d+%\)$"))
    expect(panel.locator("#account-active")).to_have_text("0 of at most 10 at a time")
    expect(panel.locator("#account-jobs")).to_have_text("1 done")
    expect(panel.locator("#account-retention")).to_have_text("7 days after each conversion")
    assert page.evaluate(UNLABELLED) == []
    shot("panel")

    panel.get_by_role("button", name="Delete my account…").click()
    confirm = panel.get_by_label("Your password, to confirm")
    expect(confirm).to_be_focused()
    confirm.fill("not my password")
    confirm.press("Enter")
    expect(panel.locator("#delete-account-problem")).to_have_text(
        "Wrong password: your account was not deleted.")
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
    assert _api(stack, "GET", "/jobs", token).status_code == 200
    shot("wrong-password")

    with pymongo.MongoClient(stack.env["MONGODB_URI"]) as client:
        db = client[stack.env["MONGODB_DB"]]
        assert db["jobs"].find_one({"owner": stack.account_id(token)}) is not None
        assert db[f"{MP3S}.files"].find_one({"metadata.owner": stack.account_id(token)}) \
            is not None
    confirm.fill(PASSWORD)
    panel.get_by_role("button", name="Delete my account and all my files").click()
    expect(page.get_by_role("heading", name="Log in or create an account")).to_be_visible()
    expect(page.locator("#notice")).to_have_text(
        f"The account {email} is deleted, with all its conversions and MP3s.")
    expect(page.locator("#notice")).to_have_attribute("data-kind", "ok")
    assert page.evaluate("() => sessionStorage.getItem('mp3converter.token')") is None
    expect(page.get_by_label("Your password, to confirm")).to_have_count(0)
    shot("deleted")

    assert _api(stack, "GET", "/jobs", token).status_code == 401, "old tokens stop working"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#notice")).to_have_text("Wrong email or password.")
    with pymongo.MongoClient(stack.env["MONGODB_URI"]) as client:
        db = client[stack.env["MONGODB_DB"]]
        assert db["jobs"].find_one({"owner": stack.account_id(token)}) is None
        for bucket in (VIDEOS, MP3S):
            assert db[f"{bucket}.files"].find_one({"metadata.owner": stack.account_id(token)}) \
                is None
    assert errors == []
    shot("login-refused")
