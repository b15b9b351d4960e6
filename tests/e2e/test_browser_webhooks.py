"""The account panel's webhooks in Debian's Chromium against the real stack: a URL into the
network refused with the server's reason, a public one registered with its secret shown once,
listed, a test event sent, its deliveries shown, deleted; screenshots in test-output/browser."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.test_browser import PASSWORD, UNLABELLED, Shots
from tests.e2e.test_browser_lifecycle import _log_in, _watch_errors

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PUBLIC = "https://93.184.216.34/mp3-hook"


def test_register_a_webhook_see_its_secret_once_test_it_and_delete_it(stack, page):
    shot = Shots(page, "webhooks")
    errors = _watch_errors(page)
    email, jwt = stack.user(PASSWORD)
    _log_in(page, stack.gateway_url, email)
    page.get_by_role("button", name="Account", exact=True).click()
    hooks = page.get_by_role("region", name="Your account").locator("#webhooks")
    expect(hooks.get_by_role("heading", name="Webhooks")).to_be_visible()
    expect(hooks.locator("#hooks-note")).to_have_text("No webhooks yet.")

    hooks.get_by_label("Endpoint URL").fill("http://169.254.169.254/latest/meta-data/")
    hooks.get_by_role("button", name="Register webhook").click()
    expect(hooks.locator("#hook-problem")).to_contain_text(
        "The webhook was not registered: url refused: the address 169.254.169.254 is link-local")

    hooks.get_by_label("Endpoint URL").fill(PUBLIC)
    hooks.get_by_label("expired").uncheck()
    hooks.get_by_role("button", name="Register webhook").click()
    shown = page.get_by_role("region", name="New webhook secret")
    expect(shown).to_be_visible()
    secret = shown.locator("#hook-secret-value").input_value()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]{44}", secret), secret
    row = hooks.locator("li.key", has_text=PUBLIC)
    expect(row).to_contain_text("Enabled. When a conversion is done, failed.")
    assert page.evaluate(UNLABELLED) == []
    shot("registered")
    shown.get_by_role("button", name="I have copied it").click()
    expect(shown).to_be_hidden()
    assert page.locator("#hook-secret-value").input_value() == ""
    listed = requests.get(f"{stack.gateway_url}/webhooks", timeout=10,
                          headers={"Authorization": f"Bearer {jwt}"}).json()["webhooks"]
    assert [(h["url"], h["events"]) for h in listed] == [(PUBLIC, ["job.done", "job.failed"])]

    row.get_by_role("button", name=f"Deliveries to {PUBLIC}").click()
    expect(row.get_by_role("list", name=f"Deliveries to {PUBLIC}")).to_have_text(
        "Nothing sent yet.")
    row.get_by_role("button", name=f"Send a test event to {PUBLIC}").click()
    expect(page.locator("#notice")).to_have_text(f"A test event is on its way to {PUBLIC}.")

    row.get_by_role("button", name=f"Delete the webhook {PUBLIC}").click()
    confirm = row.get_by_role("group", name=f"Confirm deleting {PUBLIC}")
    confirm.get_by_role("button", name="Delete").click()
    expect(hooks.locator("#hooks-note")).to_have_text("No webhooks yet.")
    expect(page.locator("#notice")).to_have_text(f"The webhook {PUBLIC} is deleted.")
    assert requests.get(f"{stack.gateway_url}/webhooks", timeout=10,
                        headers={"Authorization": f"Bearer {jwt}"}).json() == {"webhooks": []}
    shot("deleted")
    assert errors == []
