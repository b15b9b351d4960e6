"""Long names on the web page, in Debian's Chromium against the real stack: a file name or an
email address without a single space wraps or is cut short on screen (the full text kept in a
title), and the page never scrolls sideways, on a phone or a desktop. Screenshots in
test-output/browser."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import (
    CONVERSION_TIMEOUT_MS,
    PASSWORD,
    Shots,
    _job_row,
    _register_and_log_in,
)
from tests.e2e.test_browser_lifecycle import _watch_errors

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
# 300 characters without a space or any other place a line may break.
LONG_STEM = ("Concert2024LiveRecordingFinalMaster" * 9)[:300]
# What reaches past the screen's right edge, box or text: "tag.class right-edge" each.
TOO_WIDE = """() => [...document.querySelectorAll("body *")]
  .filter((n) => n.getClientRects().length > 0)
  .map((n) => [n, Math.max(n.getBoundingClientRect().right,
                           n.getBoundingClientRect().left + n.scrollWidth)])
  .filter(([, right]) => right > window.innerWidth + 0.5)
  .map(([n, right]) => `${n.tagName.toLowerCase()}.${n.className} ${Math.round(right)}`)"""

# Whether an element shows less than its text (cut short after some lines, or with "…").
CUT_SHORT = "(n) => n.scrollHeight > n.clientHeight + 1 || n.scrollWidth > n.clientWidth + 1"


def _fits(page: Page, shot: Shots, step: str) -> None:
    """At a phone's width and a desktop's, the page is no wider than the screen."""
    for name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        shot(f"{step}-{name}")
        assert widths[0] <= widths[1], (step, name, widths, page.evaluate(TOO_WIDE))


def _long_email() -> str:
    """A unique address of 140 characters with no space: 64 before the @, a 63-letter label."""
    return f"{'listener' * 7}{secrets.token_hex(4)}@{'d' * 63}.example.com"


def test_long_names_neither_widen_the_page_nor_get_lost(stack, media, page):
    shot = Shots(page, "long-names")
    errors = _watch_errors(page)
    page.set_viewport_size(PHONE)
    page.goto(f"{stack.gateway_url}/")
    email = _long_email()
    assert len(email) == 140 and " " not in email
    _register_and_log_in(page, email)
    expect(page.locator("#who-email")).to_have_text(email)
    _fits(page, shot, "signed-in")

    video = {"name": f"{LONG_STEM}.webm", "mimeType": "video/webm",
             "buffer": media("webm_opus").read_bytes()}
    text = {"name": f"{LONG_STEM}.txt", "mimeType": "text/plain",
            "buffer": media("text").read_bytes()}
    page.get_by_label("Choose one or more videos").set_input_files([video, text])
    uploads = page.locator("li.upload")
    expect(uploads).to_have_count(2)
    expect(uploads.filter(has_text=video["name"])).to_have_attribute(
        "data-state", "done", timeout=60_000)
    refused = uploads.filter(has_text=text["name"])
    expect(refused).to_have_attribute("data-state", "error", timeout=30_000)
    expect(refused).to_contain_text("Not a video")
    for item, name in ((uploads.filter(has_text=video["name"]), video["name"]),
                       (refused, text["name"])):
        expect(item.locator(".upload-name")).to_have_text(name)
        expect(item.locator(".upload-name")).to_have_attribute("title", name)

    # The gateway keeps the first 255 characters of a name; the title tag, the first 200.
    stored = video["name"][:255]
    row = _job_row(page, stored)
    expect(row).to_have_attribute("data-status", "done", timeout=CONVERSION_TIMEOUT_MS)
    expect(row.locator(".job-name")).to_have_attribute("title", stored)
    expect(row.locator(".job-tags")).to_have_text(LONG_STEM[:200])
    expect(row.locator(".job-tags")).to_have_attribute("title", LONG_STEM[:200])
    download = row.get_by_role("button", name=f"Download {stored}.mp3")
    expect(download).to_be_visible()
    expect(download).to_have_attribute("title", f"Download {stored}.mp3")
    _fits(page, shot, "done")
    for cut in (row.locator(".job-name"), row.locator(".job-tags"), download):
        assert cut.evaluate(CUT_SHORT), "a long name is cut short, whole in its title"

    page.get_by_role("button", name="Account", exact=True).click()
    expect(page.locator("#account-email")).to_have_text(email)
    _fits(page, shot, "account")
    page.get_by_role("button", name="Close").click()

    row.get_by_role("button", name=f"Delete {stored}").click()
    expect(row.get_by_role("group", name=f"Confirm deleting {stored}")).to_contain_text(
        f"Delete {stored} and its MP3? This cannot be undone.")
    _fits(page, shot, "asked")
    row.get_by_role("button", name="Yes, delete").click()
    expect(page.locator("#notice")).to_have_text(f"Deleted {stored}.")
    expect(page.locator("li.job")).to_have_count(0)
    _fits(page, shot, "deleted")

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#notice")).to_have_text(re.compile(r"^Could not create the account: "))
    _fits(page, shot, "refused")
    assert errors == []
