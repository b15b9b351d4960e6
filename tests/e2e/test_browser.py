"""The web page in Debian's Chromium (tests/e2e/conftest.py) against the real stack; screenshots
in test-output/browser."""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.conftest import ffprobe_codec, ffprobe_duration
from tests.e2e.conftest import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

OUT = SCREENSHOTS
PASSWORD = "browser password 1"
CONVERSION_TIMEOUT_MS = 120_000
STATUS_TEXT = re.compile(r"^(Queued|Converting|Done) · \d{1,3}%$")
# Records every status text the list shows, to prove the page reports progress as it changes.
WATCH_STATUSES = """() => {
  window.seenStatuses = [];
  const record = () => document.querySelectorAll(".job-status").forEach((node) => {
    if (!window.seenStatuses.includes(node.textContent)) window.seenStatuses.push(node.textContent);
  });
  new MutationObserver(record).observe(document.getElementById("jobs"),
    {subtree: true, childList: true, characterData: true});
}"""
DROP_FILE = """({name, data}) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name));
  const zone = document.getElementById("drop");
  for (const type of ["dragenter", "dragover", "drop"]) {
    const init = {dataTransfer: transfer, bubbles: true, cancelable: true};
    zone.dispatchEvent(new DragEvent(type, init));
  }
}"""
# Visible controls without a label, aria-label or text: each must be empty.
UNLABELLED = """() => [...document.querySelectorAll("input, button, textarea, audio, progress")]
  .filter((n) => n.getClientRects().length > 0)
  .filter((n) => !(n.labels && n.labels.length) && !n.getAttribute("aria-label")
                 && !(n.tagName === "BUTTON" && n.textContent.trim()))
  .map((n) => n.outerHTML)"""


class Shots:
    """Numbered full-page screenshots of one test."""

    def __init__(self, page: Page, prefix: str):
        self.page, self.prefix, self.count = page, prefix, 0

    def __call__(self, step: str) -> Path:
        self.count += 1
        path = OUT / f"{self.prefix}-{self.count:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _email(label: str) -> str:
    return f"{label}-{secrets.token_hex(4)}@example.com"


def _register_and_log_in(page: Page, email: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#notice")).to_contain_text(f"Account created for {email}")
    page.get_by_label("Password").press("Enter")  # the keyboard submits the login form
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()


def _job_row(page: Page, filename: str):
    name = page.locator(".job-name", has_text=re.compile(f"^{re.escape(filename)}$"))
    return page.locator("li.job").filter(has=name)


def _choose_files(page: Page, *paths: Path) -> None:
    page.get_by_label("Choose one or more videos").set_input_files([str(p) for p in paths])


def _drop_file(page: Page, path: Path) -> None:
    """Drag-and-drop ``path`` onto the drop zone, as a file from the desktop would be."""
    data = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(DROP_FILE, {"name": path.name, "data": data})


def _api_jobs(stack, token: str) -> dict[str, dict]:
    response = requests.get(f"{stack.gateway_url}/jobs",
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return {job["filename"]: job for job in response.json()["jobs"]}


def _no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"page is wider than the screen: {width}"


def test_convert_play_download_fail_and_privacy(stack, media, page):
    shot = Shots(page, "main")
    urls: list[str] = []
    errors: list[str] = []
    page.on("request", lambda req: urls.append(req.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: "Security Policy" in msg.text and errors.append(msg.text))
    page.goto(f"{stack.gateway_url}/")
    expect(page.get_by_role("heading", name="Log in or create an account")).to_be_visible()
    shot("start")

    first = _email("browser-first")
    _register_and_log_in(page, first)
    expect(page.locator("#jobs-note")).to_contain_text("No conversions yet")
    token = page.evaluate("() => sessionStorage.getItem('mp3converter.token')")
    assert token and token.count(".") == 2, "the JWT is kept in sessionStorage"
    shot("logged-in")

    page.evaluate(WATCH_STATUSES)
    played, downloaded = media("mp4_aac51"), media("mkv_mp3")
    _choose_files(page, played, downloaded)
    uploads = page.locator("li.upload")
    expect(uploads).to_have_count(2)
    for name in (played.name, downloaded.name):
        item = uploads.filter(has_text=name)
        expect(item).to_have_attribute("data-state", "done", timeout=60_000)
        expect(item.locator("progress")).to_have_js_property("value", 100)
        expect(item).to_contain_text("Uploaded (100%)")
    shot("uploaded")

    for path in (played, downloaded):
        row = _job_row(page, path.name)
        expect(row).to_have_attribute("data-status", "done", timeout=CONVERSION_TIMEOUT_MS)
        expect(row.locator(".job-status")).to_have_text("Done · 100%")
        expect(row.locator(".job-progress")).to_have_js_property("value", 100)
        expect(row.locator(".job-duration")).to_have_text("0:03")
        expect(row.locator(".job-size")).to_have_text(re.compile(r"^\d+(\.\d)? (KB|bytes)$"))
        expect(row.locator(".job-created time")).to_have_attribute(
            "datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    seen = page.evaluate("() => window.seenStatuses")
    assert "Done · 100%" in seen and all(STATUS_TEXT.match(s) for s in seen), seen
    (OUT / "main-statuses-seen.txt").write_text("\n".join(seen) + "\n")
    shot("done")

    jobs = _api_jobs(stack, token)
    audio = _job_row(page, played.name).locator("audio")
    expect(audio).to_have_attribute("src", re.compile(r"^/download\?fid=[0-9a-f]{24}&token="))
    page.wait_for_function("(a) => a.readyState >= 1 && isFinite(a.duration)",
                           arg=audio.element_handle())
    duration = audio.evaluate("(a) => a.duration")
    assert abs(duration - jobs[played.name]["duration"]) < 0.25, (duration, jobs[played.name])
    audio.evaluate("(a) => a.play()")
    page.wait_for_function("(a) => a.currentTime > 0.3", arg=audio.element_handle())
    seekable_end = audio.evaluate("(a) => a.seekable.length ? a.seekable.end(0) : 0")
    assert seekable_end == pytest.approx(duration, abs=0.25), "Range requests make it seekable"
    audio.evaluate("(a) => { a.currentTime = 2; }")
    page.wait_for_function("(a) => !a.seeking && a.currentTime >= 2", arg=audio.element_handle())
    shot("playing")
    audio.evaluate("(a) => a.pause()")

    stem_mp3 = f"{downloaded.stem}.mp3"
    with page.expect_download() as info:
        _job_row(page, downloaded.name).get_by_role("button", name=f"Download {stem_mp3}").click()
    saved = OUT / stem_mp3
    info.value.save_as(saved)
    assert info.value.suggested_filename == stem_mp3
    assert ffprobe_codec(saved) == "mp3"
    assert ffprobe_duration(saved) == pytest.approx(jobs[downloaded.name]["duration"], abs=0.25)

    silent, text = media("no_audio"), media("text")
    _choose_files(page, silent, text)
    rejected = uploads.filter(has_text=text.name)
    expect(rejected).to_have_attribute("data-state", "error", timeout=30_000)
    expect(rejected).to_contain_text("Not a video")
    failed = _job_row(page, silent.name)
    expect(failed).to_have_attribute("data-status", "failed", timeout=CONVERSION_TIMEOUT_MS)
    expect(failed.locator(".job-status")).to_have_text("Failed")
    expect(failed.locator(".job-error")).to_have_text("Failed: the video has no audio track")
    expect(page.locator("li.job")).to_have_count(3)  # the text file never became a job
    assert page.evaluate(UNLABELLED) == []
    shot("failed-and-rejected")

    assert not [u for u in urls if token in u], "the JWT must never appear in a URL"
    assert errors == [], "no script errors and nothing blocked by the Content-Security-Policy"
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in or create an account")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('mp3converter.token')") is None
    expect(page.locator("li.job")).to_have_count(0)
    shot("logged-out")

    second = _email("browser-second")
    with page.expect_response(lambda r: r.url.split("?")[0].endswith("/jobs")
                              and r.status == 200) as listed:
        _register_and_log_in(page, second)
    assert listed.value.json() == {"jobs": [], "next": None}
    expect(page.locator("#jobs-note")).to_contain_text("No conversions yet")
    expect(page.locator("li.job")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(played.name)
    shot("second-user")


@pytest.mark.parametrize("page", [{"width": 390, "height": 844}], indirect=True)
def test_phone_sized_screen_keyboard_and_drag_and_drop(stack, media, page):
    shot = Shots(page, "phone")
    email, _ = stack.user(PASSWORD)
    page.goto(f"{stack.gateway_url}/")
    _no_horizontal_scroll(page)
    page.keyboard.press("Tab")  # the email field is the first control
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
    clip = media("webm_opus")
    _drop_file(page, clip)
    row = _job_row(page, clip.name)
    expect(row).to_have_attribute("data-status", "done", timeout=CONVERSION_TIMEOUT_MS)
    expect(row.locator("audio")).to_be_visible()
    _no_horizontal_scroll(page)
    shot("done")


def test_upload_errors_are_explained(stack_factory, media, page):
    shot = Shots(page, "errors")
    small = stack_factory(services=("auth", "gateway"), MAX_UPLOAD_BYTES="4096")
    email, _ = small.user(PASSWORD)
    page.goto(f"{small.gateway_url}/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()

    video = media("mkv_mp3")
    assert video.stat().st_size > 4096
    _choose_files(page, video)
    item = page.locator("li.upload").first
    expect(item).to_have_attribute("data-state", "error", timeout=30_000)
    expect(item).to_contain_text("Too large: the server accepts files up to 4.0 KB.")
    shot("too-large")

    small.services["auth"].terminate(10)
    _choose_files(page, media("mov"))
    item = page.locator("li.upload").first
    expect(item).to_have_attribute("data-state", "error", timeout=30_000)
    expect(item).to_contain_text("the service is busy or unavailable")
    shot("unavailable")
    small.services["auth"].restart(60)

    page.evaluate("() => sessionStorage.setItem('mp3converter.token', 'not.a.token')")
    _choose_files(page, media("mov"))
    expect(page.locator("#notice")).to_contain_text("Your login has expired")
    expect(page.get_by_role("heading", name="Log in or create an account")).to_be_visible()
    shot("expired")


def test_too_many_login_attempts_are_explained(stack_factory, page):
    shot = Shots(page, "rate-limit")
    limited = stack_factory(services=("auth", "gateway"), AUTH_TIMEOUT_SECONDS="60",
                            LOGIN_RATE_LIMIT_PER_ACCOUNT="2 per hour")
    page.goto(f"{limited.gateway_url}/")
    page.locator("#email").fill(_email("guessed"))
    for _ in range(2):
        page.locator("#password").fill("wrong password")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#notice")).to_have_text("Wrong email or password.")
        page.locator("#notice").evaluate("(node) => { node.textContent = ''; }")
    page.locator("#password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#notice")).to_have_text(re.compile(
        r"^Too many login attempts for this account; try again in \d+ minutes\.$"))
    shot("too-many-logins")
