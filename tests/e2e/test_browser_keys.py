"""The account panel's API keys in Debian's Chromium against the real stack: create a key, see
its secret once (and copy it), find it listed, revoke it; screenshots in test-output/browser."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.test_browser import PASSWORD, UNLABELLED, Shots
from tests.e2e.test_browser_lifecycle import _log_in, _watch_errors

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def _jobs_status(stack, secret: str) -> int:
    return requests.get(f"{stack.gateway_url}/jobs", timeout=10,
                        headers={"Authorization": f"Bearer {secret}"}).status_code


def test_create_a_key_see_it_once_and_revoke_it(stack, page):
    shot = Shots(page, "keys")
    errors = _watch_errors(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                   origin=stack.gateway_url)
    email, _ = stack.user(PASSWORD)
    _log_in(page, stack.gateway_url, email)
    page.get_by_role("button", name="Account", exact=True).click()
    keys = page.get_by_role("region", name="Your account").locator("#api-keys")
    expect(keys.get_by_role("heading", name="API keys")).to_be_visible()
    expect(keys.locator("#keys-note")).to_have_text("No API keys yet.")

    # Nothing ticked: said on the form, nothing made.
    keys.get_by_label("Key name").fill("nightly backup")
    for box in ("upload videos", "list conversions and download MP3s"):
        keys.get_by_label(box).uncheck()
    keys.get_by_role("button", name="Create key").click()
    expect(keys.locator("#key-problem")).to_have_text("Tick at least one thing the key may do.")

    keys.get_by_label("upload videos").check()
    keys.get_by_label("list conversions and download MP3s").check()
    keys.get_by_label("Expires").select_option(label="In 30 days")
    keys.get_by_role("button", name="Create key").click()
    shown = page.get_by_role("region", name="New API key")
    expect(shown).to_be_visible()
    expect(shown).to_contain_text("Copy the key “nightly backup” now: it is not shown again.")
    secret = shown.locator("#key-secret-value").input_value()
    assert re.fullmatch(r"mp3k_[A-Za-z0-9_-]{43}", secret), secret
    row = keys.locator("li.key", has_text="nightly backup")
    expect(row).to_contain_text("May upload, read and download.")
    expect(row).to_contain_text("never used")
    expect(row).to_contain_text("expires")
    assert page.evaluate(UNLABELLED) == []
    shot("created")

    shown.get_by_role("button", name="Copy").click()
    expect(shown.locator("#key-copied")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    assert _jobs_status(stack, secret) == 200  # the copied key works, as a script uses it
    shown.get_by_role("button", name="I have copied it").click()
    expect(shown).to_be_hidden()
    assert secret not in page.content()

    # Shown once: closing and opening the panel, or reloading, lists it without its secret.
    page.get_by_role("button", name="Account", exact=True).click()
    page.get_by_role("button", name="Account", exact=True).click()
    expect(row).to_contain_text(re.compile(r"last used"))
    page.reload()
    page.get_by_role("button", name="Account", exact=True).click()
    expect(row).to_be_visible()
    assert secret not in page.content()
    assert page.evaluate("() => JSON.stringify(sessionStorage)").count("mp3k_") == 0
    shot("listed")

    row.get_by_role("button", name="Revoke nightly backup").click()
    confirm = row.get_by_role("group", name="Confirm revoking nightly backup")
    expect(confirm).to_contain_text("Scripts using it stop working at once.")
    expect(confirm.get_by_role("button", name="Keep")).to_be_focused()
    shot("confirm-revoke")
    confirm.get_by_role("button", name="Revoke").click()
    expect(page.locator("#notice")).to_have_text(
        "The API key “nightly backup” is revoked: it no longer works.")
    expect(keys.locator("li.key")).to_have_count(0)
    expect(keys.locator("#keys-note")).to_have_text("No API keys yet.")
    assert _jobs_status(stack, secret) == 401
    shot("revoked")
    assert errors == []
