"""The classic three curl commands against the whole stack, running as real processes."""

import json
import re
import time

import pytest
import requests
from bson import ObjectId

from tests.e2e.api import (
    classic_login,
    classic_upload,
    curl,
    mp3_files,
    video_files,
    wait_for_job,
)
from tests.e2e.storage import wait_until
from tools.media import ffprobe_codec, ffprobe_duration

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("kind", ["mp4_aac51", "mkv_mp3", "webm_opus", "mov"])
def test_classic_curl_commands_turn_a_video_into_one_mp3_and_one_email(
        stack, mailsink, media, tmp_path, kind):
    source = media(kind)
    email, password = f"{kind}-{time.time_ns()}@example.com", "a long password"
    stack.register(email, password)

    jwt = classic_login(stack, email, password)
    status, accepted = classic_upload(stack, jwt, source)
    assert status == 202, accepted
    assert set(accepted) == {"video_fid", "job_id"}

    job = wait_for_job(stack, jwt, accepted["job_id"])
    assert job["status"] == "done", job
    [mail] = mailsink.wait_for(1, to=email)
    body = mail.get_body().get_content()
    assert job["mp3_fid"] in body and accepted["job_id"] in body
    assert f"/download?fid={job['mp3_fid']}" in body

    out = tmp_path / "x.mp3"
    status, _ = curl("--output", str(out), "-H", f"Authorization: Bearer {jwt}",
                     f"{stack.gateway_url}/download?fid={job['mp3_fid']}")
    assert status == 200
    assert ffprobe_codec(out) == "mp3"
    assert abs(ffprobe_duration(out) - ffprobe_duration(source)) <= 0.2
    assert len(mp3_files(stack, accepted["job_id"])) == 1
    # the source goes once it is converted, right after the result went out
    wait_until(lambda: video_files(stack, accepted["job_id"]) == [], timeout=10,
               what="the converted video deleted")
    time.sleep(1)
    assert len(mailsink.messages(to=email)) == 1


def test_download_headers_name_the_original_video(stack, media):
    email, jwt = stack.user()
    status, accepted = classic_upload(stack, jwt, media("mov"))
    job = wait_for_job(stack, jwt, accepted["job_id"])
    resp = requests.get(f"{stack.gateway_url}/download", params={"fid": job["mp3_fid"]},
                        headers={"Authorization": f"Bearer {jwt}"}, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "audio/mpeg"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="clip.mp3"'
    assert int(resp.headers["Content-Length"]) == len(resp.content) == job["mp3_size"]


def test_video_without_audio_fails_with_a_reason_an_email_and_no_mp3(stack, mailsink, media):
    email, jwt = stack.user()
    status, accepted = classic_upload(stack, jwt, media("no_audio"))
    assert status == 202
    job = wait_for_job(stack, jwt, accepted["job_id"])
    assert job["status"] == "failed"
    assert "no audio track" in job["error"]
    assert job["mp3_fid"] is None
    [mail] = mailsink.wait_for(1, to=email)
    assert mail["Subject"].startswith("Could not convert silent.mp4: ")
    assert len(mp3_files(stack, accepted["job_id"])) == 0


def test_unreadable_video_fails_with_a_reason_and_no_mp3(stack, mailsink, tmp_path):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 200)
    email, jwt = stack.user()
    status, accepted = classic_upload(stack, jwt, corrupt)
    assert status == 202
    job = wait_for_job(stack, jwt, accepted["job_id"])
    assert job["status"] == "failed"
    assert "ffmpeg cannot read this file" in job["error"]
    [mail] = mailsink.wait_for(1, to=email)
    assert "broken.mp4" in mail["Subject"]
    assert len(mp3_files(stack, accepted["job_id"])) == 0


def test_a_text_file_is_refused_at_upload(stack, media):
    _, jwt = stack.user()
    status, body = classic_upload(stack, jwt, media("text"))
    assert status == 415
    assert "audio or video" in body["error"]
    jobs = requests.get(f"{stack.gateway_url}/jobs", headers={"Authorization": f"Bearer {jwt}"},
                        timeout=10).json()["jobs"]
    assert jobs == []


def test_another_users_token_cannot_download_the_mp3(stack, media):
    _, owner_jwt = stack.user()
    _, other_jwt = stack.user()
    _, accepted = classic_upload(stack, owner_jwt, media("mkv_mp3"))
    job = wait_for_job(stack, owner_jwt, accepted["job_id"])
    url = f"{stack.gateway_url}/download?fid={job['mp3_fid']}"
    assert requests.get(url, headers={"Authorization": f"Bearer {other_jwt}"},
                        timeout=10).status_code == 404
    assert requests.get(f"{stack.gateway_url}/jobs/{accepted['job_id']}",
                        headers={"Authorization": f"Bearer {other_jwt}"},
                        timeout=10).status_code == 404
    assert requests.get(url, headers={"Authorization": f"Bearer {owner_jwt}"},
                        timeout=10).status_code == 200


@pytest.mark.parametrize("fid", ["not-an-id", str(ObjectId()), ""])
def test_unknown_or_malformed_ids_are_404(stack, fid):
    _, jwt = stack.user()
    resp = requests.get(f"{stack.gateway_url}/download", params={"fid": fid},
                        headers={"Authorization": f"Bearer {jwt}"}, timeout=10)
    assert resp.status_code == 404
    assert resp.json()["error"]


def test_jobs_list_is_the_callers_newest_first(stack, media):
    _, jwt = stack.user()
    ids = [classic_upload(stack, jwt, media(kind))[1]["job_id"] for kind in ("mov", "mkv_mp3")]
    jobs = requests.get(f"{stack.gateway_url}/jobs", headers={"Authorization": f"Bearer {jwt}"},
                        timeout=10).json()["jobs"]
    assert [j["job_id"] for j in jobs] == list(reversed(ids))
    assert all(j["filename"] in ("clip.mov", "clip.mkv") for j in jobs)


@pytest.mark.parametrize("case", ["no token", "bad token", "no file", "file misnamed",
                                  "two files", "not multipart"])
def test_bad_uploads_get_a_clear_json_error(stack, media, case):
    _, jwt = stack.user()
    headers = {"Authorization": f"Bearer {jwt}"}
    video = media("mov").read_bytes()
    kwargs = {"files": {"file": ("clip.mov", video)}, "headers": headers}
    expected = 400
    if case == "no token":
        kwargs["headers"], expected = {}, 401
    elif case == "bad token":
        kwargs["headers"], expected = {"Authorization": "Bearer not.a.jwt"}, 401
    elif case == "no file":
        kwargs["files"] = {"title": (None, "a title, as a text field, and no file")}
    elif case == "file misnamed":
        kwargs["files"], expected = {"other": ("clip.mov", video)}, 422
    elif case == "two files":
        kwargs["files"] = [("file", ("a.mov", video)), ("file", ("b.mov", video))]
    elif case == "not multipart":
        kwargs = {"data": video, "headers": {**headers, "Content-Type": "video/quicktime"}}
    resp = requests.post(f"{stack.gateway_url}/upload", timeout=30, **kwargs)
    assert resp.status_code == expected, resp.text
    assert resp.json()["error"]
    if case == "file misnamed":
        assert resp.json()["error"].startswith("unknown field 'other'")
    if case == "no file":
        assert resp.json()["error"] == "missing multipart field 'file'"


def test_login_and_register_errors_are_json(stack):
    gw = stack.gateway_url
    assert requests.post(f"{gw}/login", timeout=10).status_code == 401
    resp = requests.post(f"{gw}/login", auth=("nobody@example.com", "whatever1"), timeout=10)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid email or password"
    assert requests.post(f"{gw}/register", json={"email": "x", "password": "long enough"},
                         timeout=10).status_code == 422
    email, _ = stack.user()
    assert requests.post(f"{gw}/register", json={"email": email, "password": "long enough"},
                         timeout=10).status_code == 409


def test_health_and_readiness(stack):
    for url in (stack.gateway_url, stack.auth_url):
        assert requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
        assert requests.get(f"{url}/readyz", timeout=10).status_code == 200


def test_logs_are_json_lines_carrying_the_job_id(stack, media):
    _, jwt = stack.user()
    _, accepted = classic_upload(stack, jwt, media("mkv_mp3"))
    wait_for_job(stack, jwt, accepted["job_id"])
    time.sleep(1)
    for name in ("gateway", "converter"):
        lines = [json.loads(line) for line in stack.processes[name].log_text().splitlines()
                 if line.startswith("{")]
        assert any(doc.get("job_id") == accepted["job_id"] for doc in lines), name
    raw = stack.processes["converter"].log_text().splitlines()
    lines = [line for line in raw if line.strip() and not line.startswith("--- ")]
    assert lines and all(re.match(r"^\{.*\}$", line) for line in lines), lines[:5]
