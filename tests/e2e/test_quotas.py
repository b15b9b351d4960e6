"""Quotas: too many conversions waiting (429) or too much stored (413) is refused with nothing
stored; GET /account and GET /admin/usage report what each user stores."""

import json
import time

import pytest

from common.units import size
from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.rawhttp import PIECE, multipart, raw_upload
from tests.e2e.storage import (
    VIDEOS,
    auth_command,
    call,
    inventory,
    ops,
    wait_until,
)
from tools.media import make_noise

pytestmark = pytest.mark.e2e
WEB = ("auth", "gateway")  # no converter: uploads stay queued, so they stay active
PASSWORD = "correct horse battery"


def test_too_many_active_conversions_get_429_and_nothing_is_stored(stack_factory, media):
    stack = stack_factory(services=WEB, USER_MAX_ACTIVE_JOBS="2")
    email, jwt = stack.user()
    accepted = []
    for _ in range(2):
        status, body = classic_upload(stack, jwt, media("mov"))
        assert status == 202, body
        accepted.append(body["job_id"])
    before = inventory(stack)
    assert before["jobs"] == 2 and before[f"{VIDEOS}.files"] == 2

    refused = call(stack, "POST", "/upload", jwt,
                   files={"file": ("clip.mov", media("mov").read_bytes())})
    assert refused.status_code == 429, refused.text
    assert refused.json() == {"error": "you have 2 conversions waiting or converting; try "
                                       "again when one finishes"}
    assert refused.headers["Retry-After"] == "60"
    assert inventory(stack) == before
    # ... also when the body arrives without a length.
    chunked = raw_upload(stack, jwt, multipart(media("mov")), chunked=True, stop_after=1 << 30)
    assert chunked.status == 429, chunked.body
    assert inventory(stack) == before

    account = call(stack, "GET", "/account", jwt).json()
    assert account["usage"]["active_jobs"] == 2 and account["quota"]["active_jobs"] == 2
    # Once one is gone there is room again.
    assert call(stack, "DELETE", f"/jobs/{accepted[0]}", jwt).status_code == 204
    status, body = classic_upload(stack, jwt, media("mov"))
    assert status == 202, body
    # Another user is not held back by this one.
    _, other = stack.user()
    assert classic_upload(stack, other, media("mov"))[0] == 202


def test_an_upload_over_the_storage_quota_is_refused_before_its_body(stack_factory, media,
                                                                    media_dir):
    video = make_noise(media_dir, 300)  # about 1 MB
    small = media("mov")  # about 80 KB
    quota = video.stat().st_size // 2
    stack = stack_factory(services=WEB, USER_STORAGE_QUOTA_BYTES=str(quota))
    _, jwt = stack.user()
    status, body = classic_upload(stack, jwt, small)
    assert status == 202, body
    before = inventory(stack)

    answer = raw_upload(stack, jwt, multipart(video), chunked=False, stop_after=PIECE)
    assert answer.status == 413, answer.body
    assert answer.sent <= PIECE < len(multipart(video))  # answered, most of it never sent
    error = answer.json()["error"]
    assert error.startswith("this upload does not fit in your storage quota: you use "), error
    assert "delete some conversions or wait for their MP3s to expire" in error
    assert inventory(stack) == before
    # curl, sending Content-Length too, gets the same answer.
    status, body = classic_upload(stack, jwt, video)
    assert status == 413 and body["error"] == error
    assert inventory(stack) == before
    account = call(stack, "GET", "/account", jwt).json()
    assert account["usage"]["bytes"] == small.stat().st_size
    assert account["quota"]["bytes"] == quota


def test_a_chunked_upload_crossing_the_storage_quota_is_cut_off_and_removed(stack_factory,
                                                                           media_dir):
    video = make_noise(media_dir, 1200)  # about 3.8 MB: several 1 MiB GridFS chunks
    quota = int(video.stat().st_size * 0.7)
    stack = stack_factory(services=WEB, USER_STORAGE_QUOTA_BYTES=str(quota))
    _, jwt = stack.user()
    before = inventory(stack)
    seen = {}

    def watch(sent: int) -> None:
        """Halfway to the line, the partial upload is in GridFS."""
        if "partial" not in seen and sent > quota // 2 + (1 << 20):
            seen["partial"] = wait_until(
                lambda: inventory(stack)[f"{VIDEOS}.chunks"] or None, timeout=10,
                what="the first chunks of the upload stored")

    answer = raw_upload(stack, jwt, multipart(video), chunked=True,
                        stop_after=quota + 8 * PIECE, while_sending=watch)
    assert seen["partial"] >= 1
    assert answer.status == 413, answer.body
    assert answer.json()["error"].startswith(
        "this upload does not fit in your storage quota: you use 0 bytes of "), answer.body
    # Cut off as it crossed the line: the rest of the body was never needed.
    assert quota < answer.sent < len(multipart(video)) - 8 * PIECE
    wait_until(lambda: inventory(stack) == before, timeout=10,
               what="the partial upload removed")
    assert call(stack, "GET", "/jobs", jwt).json()["jobs"] == []
    assert call(stack, "GET", "/account", jwt).json()["usage"] == {"bytes": 0, "active_jobs": 0}


def test_an_unverified_user_has_smaller_limits_until_they_confirm_their_address(
        stack_factory, media, media_dir):
    video = make_noise(media_dir, 300)  # about 1 MB
    small = media("mov")  # about 80 KB
    quota = video.stat().st_size // 2
    stack = stack_factory(services=WEB, UNVERIFIED_STORAGE_QUOTA_BYTES=str(quota))
    email, jwt = stack.user(verified=False)
    account = call(stack, "GET", "/account", jwt).json()
    assert account["verified"] is False
    assert account["quota"] == {"bytes": quota, "active_jobs": 2}  # the default of 2

    status, body = classic_upload(stack, jwt, video)
    assert status == 413, body
    assert body["error"] == (
        f"this upload does not fit in your storage quota: you use 0 bytes of {size(quota)}; "
        "delete some conversions or wait for their MP3s to expire, or confirm your email "
        "address: the quota is then 5 GiB")
    for _ in range(2):
        status, body = classic_upload(stack, jwt, small)
        assert status == 202, body
    status, body = classic_upload(stack, jwt, small)
    assert status == 429, body
    assert body["error"] == ("you have 2 conversions waiting or converting; try again when one "
                             "finishes, or confirm your email address: you may then have 10 at "
                             "once")
    assert inventory(stack)["jobs"] == 2

    stack.verify(email)  # the same token: auth's /validate says what the account is now
    account = call(stack, "GET", "/account", jwt).json()
    assert account["verified"] is True
    assert account["quota"] == {"bytes": 5 * 1024**3, "active_jobs": 10}
    for path in (small, video):
        status, body = classic_upload(stack, jwt, path)
        assert status == 202, body
    assert call(stack, "GET", "/account", jwt).json()["usage"] == {
        "bytes": 3 * small.stat().st_size + video.stat().st_size, "active_jobs": 4}


def test_account_shows_email_verified_flag_usage_quotas_and_job_counts(stack, media):
    email, jwt = stack.user()
    _, accepted = classic_upload(stack, jwt, media("mov"))
    job = wait_for_job(stack, jwt, accepted["job_id"])
    _, failed = classic_upload(stack, jwt, media("no_audio"))
    assert wait_for_job(stack, jwt, failed["job_id"])["status"] == "failed"
    account = call(stack, "GET", "/account", jwt).json()
    assert account == {
        "email": email, "verified": True,
        "usage": {"bytes": job["mp3_size"], "active_jobs": 0},
        "quota": {"bytes": 5 * 1024**3, "active_jobs": 10},
        "jobs": {"queued": 0, "converting": 0, "done": 1, "failed": 1, "expired": 0},
        "mp3_retention_hours": 168.0,
    }
    unverified_email, unverified = stack.user(verified=False)
    fresh = call(stack, "GET", "/account", unverified).json()
    assert fresh["email"] == unverified_email and fresh["verified"] is False
    assert fresh["usage"] == {"bytes": 0, "active_jobs": 0}
    assert call(stack, "GET", "/account").status_code == 401


def test_admin_usage_lists_users_by_storage_for_admins_only(stack, media):
    small_email, small_jwt = stack.user()
    big_email, big_jwt = stack.user()
    _, one = classic_upload(stack, small_jwt, media("mov"))
    jobs = [classic_upload(stack, big_jwt, media(kind))[1]["job_id"]
            for kind in ("mov", "mp4_aac51")]
    small = wait_for_job(stack, small_jwt, one["job_id"])["mp3_size"]
    big = sum(wait_for_job(stack, big_jwt, job_id)["mp3_size"] for job_id in jobs)

    refused = call(stack, "GET", "/admin/usage", small_jwt)
    assert refused.status_code == 403
    assert refused.json() == {"error": "this is for administrators only"}
    assert call(stack, "GET", "/admin/usage").status_code == 401

    admin = f"admin-{time.time_ns()}@example.com"
    created = auth_command(stack, "create-user", admin, "--admin", "--password-stdin",
                           stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    rows = call(stack, "GET", "/admin/usage", stack.login(admin, PASSWORD)).json()["users"]
    by_owner = {row["owner"]: row for row in rows}
    small_id, big_id = stack.account_id(small_jwt), stack.account_id(big_jwt)
    assert by_owner[small_id]["bytes"] == small and by_owner[big_id]["bytes"] == big
    assert by_owner[big_id]["jobs"]["done"] == 2 and by_owner[big_id]["active_jobs"] == 0
    assert [row["bytes"] for row in rows] == sorted((row["bytes"] for row in rows),
                                                    reverse=True)
    # The operator command lists the same.
    listed = {doc["owner"]: doc for doc in map(json.loads, ops(stack, "usage", "--json")
                                               .splitlines())}
    assert listed[big_id]["bytes"] == big and listed[small_id]["bytes"] == small
