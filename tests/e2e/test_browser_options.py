"""The conversion options on the web page, in Debian's Chromium against the real stack: chosen
in the upload card's Options panel, shown on the finished conversion's card (tags, cover,
length, options), a refused option explained, the choices kept for the next visit.
Screenshots in test-output/browser."""

from __future__ import annotations

import re

import pytest
import requests
from mutagen.id3 import ID3
from playwright.sync_api import Page, expect

from common.options import InvalidOption, from_fields
from tests.conftest import ffprobe_duration
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_browser import (
    CONVERSION_TIMEOUT_MS,
    PASSWORD,
    UNLABELLED,
    Shots,
    _choose_files,
    _email,
    _job_row,
    _register_and_log_in,
)
from tests.e2e.test_browser_lifecycle import _log_in, _watch_errors
from tools.media import CHAPTERS, make_chaptered_video

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# Records the fields of every upload the page sends, in their order (a file as "file:<name>").
WATCH_UPLOADS = """() => {
  window.sentForms = [];
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    if (body instanceof FormData) {
      window.sentForms.push([...body.entries()].map(
        ([name, value]) => [name, typeof value === "string" ? value : `file:${value.name}`]));
    }
    return send.call(this, body);
  };
}"""
# Form controls (select included) that are shown without a label.
UNLABELLED_OPTIONS = """() => [...document.querySelectorAll("#options input, #options select")]
  .filter((n) => n.getClientRects().length > 0 && !(n.labels && n.labels.length))
  .map((n) => n.outerHTML)"""
SECONDS = re.compile(r"^PT(\d+(?:\.\d+)?)S$")
# Whether a blob: URL still gives a picture (a revoked one gives nothing).
LOADS = """(url) => new Promise((resolve) => {
  const img = new Image();
  img.onload = () => resolve("kept");
  img.onerror = () => resolve("revoked");
  img.src = url;
})"""


def _api(stack, path: str, token: str) -> requests.Response:
    return requests.get(f"{stack.gateway_url}{path}",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _open_options(page: Page) -> None:
    page.locator("#options > summary").click()
    expect(page.get_by_label("Quality")).to_be_visible()


def _shown_seconds(row) -> float:
    """The MP3's length as the card states it in its <time datetime>."""
    stamp = row.locator(".job-duration time").get_attribute("datetime")
    match = SECONDS.match(stamp or "")
    assert match, stamp
    return float(match.group(1))


def test_options_make_the_mp3_and_its_card_shows_them(stack, media, page):
    shot = Shots(page, "options")
    errors = _watch_errors(page)
    urls: list[str] = []
    page.on("request", lambda req: urls.append(req.url))
    page.goto(f"{stack.gateway_url}/")
    _register_and_log_in(page, _email("options"))
    token = page.evaluate("() => sessionStorage.getItem('mp3converter.token')")
    page.evaluate(WATCH_UPLOADS)
    expect(page.locator("#options-summary")).to_have_text("(defaults)")

    _open_options(page)
    expect(page.get_by_label("Quality")).to_have_value("")
    expect(page.get_by_label("Quality").locator("option").first).to_have_text(
        "Default (V2 / keep MP3)")
    page.get_by_label("Quality").select_option("320")
    page.get_by_label("Start at").fill("0:01")
    page.get_by_label("End at").fill("0:02.5")
    expect(page.get_by_label("Title")).to_have_attribute("placeholder", "file name")
    page.get_by_label("Title").fill("Évening Talk")
    page.get_by_label("Artist").fill("Ann")
    page.get_by_label("Album").fill("Live")
    expect(page.get_by_label("Normalize loudness (−16 LUFS)")).not_to_be_checked()
    expect(page.get_by_label("Cover picture from the video")).to_be_checked()
    expect(page.locator("#options-summary")).to_have_text(
        "(320 kbit/s · 0:01–0:02.5 · Évening Talk — Ann — Live)")
    assert page.evaluate(UNLABELLED) == [] and page.evaluate(UNLABELLED_OPTIONS) == []
    shot("chosen")

    video = media("mov")  # 3 s, 160x120 video with a stereo AAC track
    _choose_files(page, video)
    # Only what was chosen is sent, and before the file.
    sent = page.evaluate("() => window.sentForms")
    assert sent == [[["quality", "320"], ["start", "0:01"], ["end", "0:02.5"],
                     ["title", "Évening Talk"], ["artist", "Ann"], ["album", "Live"],
                     ["file", f"file:{video.name}"]]], sent
    row = _job_row(page, video.name)
    expect(row).to_have_attribute("data-status", "done", timeout=CONVERSION_TIMEOUT_MS)

    (job,) = _api(stack, "/jobs", token).json()["jobs"]
    assert job["options"] == {"quality": "320", "start": 1.0, "end": 2.5, "normalize": False,
                              "title": "Évening Talk", "artist": "Ann", "album": "Live",
                              "cover": "auto"}, job
    assert job["mode"] == "encode" and job["chapters"] == 0, job
    assert job["duration"] == pytest.approx(1.5, abs=0.1), job
    assert job["cover"] and (job["cover"]["width"], job["cover"]["height"]) == (160, 120), job

    cover = row.locator("img.job-cover")
    expect(cover).to_be_visible()
    expect(cover).to_have_attribute("alt", "Cover of Évening Talk")
    expect(cover).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=cover.element_handle())
    assert cover.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [160, 120]
    expect(row.locator(".job-tags")).to_have_text("Évening Talk — Ann — Live")
    expect(row.locator(".job-options")).to_have_text("320 kbit/s · 0:01–0:02.5")
    expect(row.locator(".job-duration")).to_have_text(re.compile(r"^0:0[12]$"))
    assert _shown_seconds(row) == pytest.approx(job["duration"], abs=0.001)
    shot("done")

    # Played by the card's own player.
    audio = row.locator("audio")
    page.wait_for_function("(a) => a.readyState >= 1 && isFinite(a.duration)",
                           arg=audio.element_handle())
    assert audio.evaluate("(a) => a.duration") == pytest.approx(1.5, abs=0.15)
    assert audio.evaluate("(a) => a.play().then(() => true)") is True
    page.wait_for_function("(a) => a.currentTime > 0.2", arg=audio.element_handle())
    audio.evaluate("(a) => a.pause()")
    shot("played")

    # The downloaded MP3 carries what the card says.
    with page.expect_download() as info:
        row.get_by_role("button", name="Download clip.mp3").click()
    saved = SCREENSHOTS / "options-clip.mp3"
    info.value.save_as(saved)
    tags = ID3(saved)
    assert (str(tags["TIT2"]), str(tags["TPE1"]), str(tags["TALB"])) == (
        "Évening Talk", "Ann", "Live")
    (picture,) = tags.getall("APIC")
    assert picture.mime == "image/jpeg" and picture.type == 3  # the front cover
    assert ffprobe_duration(saved) == pytest.approx(job["duration"], abs=0.1)

    # The cover was fetched once, however often the list was polled since.
    with page.expect_response(lambda r: r.url.split("?")[0].endswith("/jobs")):
        pass
    with page.expect_response(lambda r: r.url.split("?")[0].endswith("/jobs")):
        pass
    cover_path = f"/jobs/{job['job_id']}/cover"
    assert [u for u in urls if u.endswith(cover_path)] == [f"{stack.gateway_url}{cover_path}"]
    assert not [u for u in urls if token in u], "the JWT must never appear in a URL"

    # Deleting the conversion releases its picture.
    blob_url = cover.get_attribute("src")
    assert page.evaluate(LOADS, blob_url) == "kept"
    row.get_by_role("button", name=f"Delete {video.name}").click()
    row.get_by_role("button", name="Yes, delete").click()
    expect(row).to_have_count(0)
    assert page.evaluate(LOADS, blob_url) == "revoked"
    assert errors == [], "no script errors and nothing blocked by the Content-Security-Policy"


def test_a_refused_option_is_explained_and_the_choices_are_kept(stack, media, media_dir, page):
    shot = Shots(page, "options-kept")
    errors = _watch_errors(page)
    email, token = stack.user(PASSWORD)
    _log_in(page, stack.gateway_url, email)
    _open_options(page)
    page.get_by_label("Quality").select_option("v0")
    page.get_by_label("Artist").fill("Ann")
    page.get_by_label("Normalize loudness (−16 LUFS)").check()
    page.get_by_label("Cover picture from the video").uncheck()
    page.get_by_label("Title").fill("Wrong way round")
    page.get_by_label("Start at").fill("0:02")
    page.get_by_label("End at").fill("0:01")
    with pytest.raises(InvalidOption) as refused:
        from_fields({"start": "0:02", "end": "0:01"}, "clip.mov")

    with page.expect_response(lambda r: r.url.endswith("/upload")) as answer:
        _choose_files(page, media("mov"))
    assert answer.value.status == 422
    assert answer.value.json() == {"error": str(refused.value)}
    item = page.locator("li.upload").first
    expect(item).to_have_attribute("data-state", "error")
    expect(item).to_contain_text(f"Not uploaded: {str(refused.value).rstrip('.')}. "
                                 "Check the Options.")
    expect(page.locator("#options")).to_have_attribute("open", "")
    assert _api(stack, "/jobs", token).json() == {"jobs": [], "next": None}
    expect(page.locator("li.job")).to_have_count(0)
    shot("refused")

    # Quality, loudness, artist and cover are kept; title and trim belong to one file.
    page.reload()
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
    expect(page.locator("#options-summary")).to_have_text("(V0 · normalized · no cover · Ann)")
    _open_options(page)
    expect(page.get_by_label("Quality")).to_have_value("v0")
    expect(page.get_by_label("Artist")).to_have_value("Ann")
    expect(page.get_by_label("Album")).to_have_value("")
    expect(page.get_by_label("Normalize loudness (−16 LUFS)")).to_be_checked()
    expect(page.get_by_label("Cover picture from the video")).not_to_be_checked()
    for label in ("Title", "Start at", "End at"):
        expect(page.get_by_label(label)).to_have_value("")
    shot("reloaded")

    # The kept choices apply: a chaptered video, normalized, as V0, without a cover.
    urls: list[str] = []
    page.on("request", lambda req: urls.append(req.url))
    video = make_chaptered_video(media_dir)
    _choose_files(page, video)
    row = _job_row(page, video.name)
    expect(row).to_have_attribute("data-status", "done", timeout=CONVERSION_TIMEOUT_MS)
    (job,) = _api(stack, "/jobs", token).json()["jobs"]
    assert job["options"] == {"quality": "v0", "start": None, "end": None, "normalize": True,
                              "title": video.stem, "artist": "Ann", "album": None,
                              "cover": "none"}, job
    assert job["cover"] is None and job["chapters"] == len(CHAPTERS), job
    expect(row.locator(".job-tags")).to_have_text(f"{video.stem} — Ann")
    expect(row.locator(".job-options")).to_have_text(
        f"V0 · normalized · no cover · {len(CHAPTERS)} chapters")
    expect(row.locator("audio")).to_be_visible()
    expect(row.locator("img.job-cover")).to_be_hidden()
    assert not [u for u in urls if u.endswith("/cover")], "no cover: nothing to fetch"
    shot("kept-options-done")
    assert errors == [], "no script errors and nothing blocked by the Content-Security-Policy"
