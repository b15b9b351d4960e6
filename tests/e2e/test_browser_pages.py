"""The list of conversions a page at a time, in Debian's Chromium against the real stack: a user
with more jobs than one page sees the older ones with "Show older conversions", and the poll
keeps them. Screenshots in test-output/browser."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import PASSWORD, UNLABELLED, Shots
from tests.e2e.test_browser_lifecycle import _log_in, _watch_errors
from tests.e2e.test_jobs_pages import seed

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
PAGE = 50  # jobs per answer the page asks for


def _names(page: Page) -> list[str]:
    return page.locator("li.job .job-name").all_text_contents()


def _polled(page: Page) -> None:
    """Waits for the page's next refresh of its first page."""
    with page.expect_response(lambda r: r.url.split("?")[0].endswith("/jobs")
                              and "cursor=" not in r.url and r.status == 200):
        pass


def test_older_conversions_are_shown_on_request_and_kept_across_refreshes(stack, page):
    shot = Shots(page, "pages")
    errors = _watch_errors(page)
    email, jwt = stack.user(PASSWORD)
    owner = stack.account_id(jwt)
    seed(stack, owner, 60)  # seeded-000 (oldest) .. seeded-059 (newest)
    newest_first = [f"seeded-{i:03d}.mp4" for i in reversed(range(60))]
    _log_in(page, stack.gateway_url, email)

    jobs = page.locator("li.job")
    more = page.get_by_role("button", name="Show older conversions")
    expect(jobs).to_have_count(PAGE)
    assert _names(page) == newest_first[:PAGE]
    expect(more).to_be_visible()
    shot("first-page")

    with page.expect_response(lambda r: "cursor=" in r.url) as older:
        more.click()
    assert older.value.status == 200 and older.value.json()["next"] is None
    expect(jobs).to_have_count(60)
    assert _names(page) == newest_first
    expect(more).to_be_hidden()  # nothing older is left
    expect(page.locator("li.job", has_text="seeded-009.mp4").locator(".job-delete")).to_be_focused()
    assert page.evaluate(UNLABELLED) == []
    shot("all-pages")

    # The poll asks for the first page again; the older cards stay, in order.
    _polled(page)
    _polled(page)
    expect(jobs).to_have_count(60)
    assert _names(page) == newest_first

    # A newer job comes first; the oldest ones are still shown below.
    seed(stack, owner, 1, created_at=time.time() + 5, prefix="newer")
    expect(jobs.first).to_contain_text("newer-000.mp4")
    expect(jobs).to_have_count(61)
    assert _names(page) == ["newer-000.mp4", *newest_first]

    # Deleting an older card removes it for good.
    oldest = page.locator("li.job", has_text="seeded-000.mp4")
    oldest.get_by_role("button", name="Delete seeded-000.mp4").click()
    oldest.get_by_role("button", name="Yes, delete").click()
    expect(page.locator("#notice")).to_have_text("Deleted seeded-000.mp4.")
    _polled(page)
    expect(jobs).to_have_count(60)
    assert _names(page)[-1] == "seeded-001.mp4"
    assert errors == []
    shot("kept")


def test_a_page_of_jobs_or_fewer_shows_no_control(stack, page):
    email, jwt = stack.user(PASSWORD)
    seed(stack, stack.account_id(jwt), PAGE)
    _log_in(page, stack.gateway_url, email)
    expect(page.locator("li.job")).to_have_count(PAGE)
    _polled(page)
    expect(page.locator("#jobs-more")).to_be_hidden()
