"""The page sends a large file with tus (the vendored tus-js-client): cut off by a reload, the same
file chosen again goes on from where the server stopped, and converts."""

from __future__ import annotations

import subprocess

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import _choose_files, _email, _register_and_log_in
from tools.media import ffmpeg_exe

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
CHUNK = 8 * 1024 * 1024  # upload.js RESUMABLE_CHUNK


@pytest.fixture(scope="module")
def big_video(tmp_path_factory):
    """A real video over upload.js's RESUMABLE_ABOVE (8 MiB): two PATCHes of 8 MiB."""
    path = tmp_path_factory.mktemp("browser-resumable") / "lecture.mkv"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=640x360:rate=25,noise=alls=40:allf=t", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=44100", "-t", "12", "-c:v", "mpeg4",
                    "-q:v", "5", "-c:a", "pcm_s16le", str(path)], check=True, timeout=120)
    assert CHUNK < path.stat().st_size < 2 * CHUNK
    return path


def test_a_large_upload_cut_by_a_reload_resumes_when_the_file_is_chosen_again(
        stack, page: Page, big_video):
    page.goto(f"{stack.gateway_url}/")
    _register_and_log_in(page, _email("resume"))
    blocked = {"patch": False}

    def hold(route):
        if route.request.method == "PATCH" and blocked["patch"]:
            route.abort()  # the connection drops as the page goes away
        else:
            route.continue_()

    page.route("**/uploads/**", hold)
    with page.expect_response(lambda r: r.request.method == "PATCH" and r.status == 204,
                              timeout=60_000) as first:
        _choose_files(page, big_video)
    assert first.value.headers["upload-offset"] == str(CHUNK)
    upload_url = first.value.url
    blocked["patch"] = True
    page.reload()
    page.unroute("**/uploads/**")
    expect(page.get_by_text("Signed in as")).to_be_visible()  # the tab kept its login

    sent: list[tuple[str, str, str | None]] = []
    page.on("request", lambda r: sent.append((r.method, r.url, r.headers.get("upload-offset")))
            if "/uploads" in r.url else None)
    _choose_files(page, big_video)
    item = page.locator("li.upload").first
    expect(item).to_contain_text("Uploaded (100%)", timeout=60_000)
    assert ("POST", f"{stack.gateway_url}/uploads", None) not in sent  # no new upload
    patches = [(url, offset) for method, url, offset in sent if method == "PATCH"]
    assert patches and patches[0] == (upload_url, str(CHUNK)), sent  # from where it stopped

    token = page.evaluate("() => sessionStorage.getItem('mp3converter.token')")
    job_id = upload_url.rsplit("/", 1)[1]
    job = None
    for _ in range(120):
        job = requests.get(f"{stack.gateway_url}/jobs/{job_id}", timeout=10,
                           headers={"Authorization": f"Bearer {token}"}).json()
        if job.get("status") in ("done", "failed"):
            break
        page.wait_for_timeout(1000)
    assert job["status"] == "done", job
    assert job["size"] == big_video.stat().st_size and job["filename"] == big_video.name
