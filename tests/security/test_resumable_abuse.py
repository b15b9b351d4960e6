"""Resumable uploads (tus) against the real stack, used the wrong way: by someone else, by a key
without the upload scope, many at once against the quota, past the rate limit POST /upload
shares, past their own length."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

pytestmark = pytest.mark.security
MIB = 1024 * 1024
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42"


def tus(token: str, **headers) -> dict:
    return {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0", **headers}


def create(stack, token: str, length: int) -> requests.Response:
    return requests.post(f"{stack.gateway_url}/uploads", timeout=30, headers=tus(
        token, **{"Upload-Length": str(length),
                  "Upload-Metadata": "filename " + base64.b64encode(b"a.mp4").decode()}))


def patch(url: str, token: str, offset: int, data: bytes) -> requests.Response:
    return requests.patch(url, data=data, timeout=30, headers=tus(
        token, **{"Upload-Offset": str(offset),
                  "Content-Type": "application/offset+octet-stream"}))


def api_key(stack, jwt: str, *scopes: str) -> str:
    response = requests.post(f"{stack.gateway_url}/tokens", timeout=10,
                             headers={"Authorization": f"Bearer {jwt}"},
                             json={"name": "-".join(scopes), "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return response.json()["secret"]


def test_another_users_upload_and_a_key_without_the_upload_scope_get_nothing(stack):
    _, owner = stack.user()
    _, other = stack.user()
    created = create(stack, owner, 3 * MIB)
    assert created.status_code == 201
    url = f"{stack.gateway_url}{created.headers['Location']}"
    assert patch(url, owner, 0, MP4_HEAD + b"\x00" * 5000).status_code == 204
    for token in (other, api_key(stack, other, "upload")):
        assert requests.head(url, headers=tus(token), timeout=10).status_code == 404
        assert patch(url, token, 5012, b"\x00" * 10).status_code == 404
        assert requests.delete(url, headers=tus(token), timeout=10).status_code == 404
    reader = api_key(stack, owner, "read")
    refused = create(stack, reader, 1000)
    assert refused.status_code == 403 and "upload" in refused.json()["error"]
    assert requests.head(url, headers=tus(reader), timeout=10).status_code == 403
    uploader = api_key(stack, owner, "upload")
    head = requests.head(url, headers=tus(uploader), timeout=10)
    assert head.status_code == 200 and head.headers["Upload-Offset"] == "5012"
    past = patch(url, uploader, 5012, b"\x00" * (3 * MIB))  # more than is left of it
    assert past.status_code == 413
    assert requests.delete(url, headers=tus(uploader), timeout=10).status_code == 204


def test_creations_at_once_take_the_quota_one_after_the_other_and_share_the_rate_limit(
        stack_factory, tmp_path):
    stack = stack_factory(USER_STORAGE_QUOTA_BYTES=str(10 * MIB),
                          UPLOAD_RATE_LIMIT_PER_USER="9 per hour")
    _, jwt = stack.user()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: create(stack, jwt, 4 * MIB), range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 201] + [413] * 6, statuses  # 2 x 4 MiB fit in 10 MiB, no more
    account = requests.get(f"{stack.gateway_url}/account", timeout=10,
                           headers={"Authorization": f"Bearer {jwt}"}).json()
    assert account["usage"]["bytes"] == 8 * MIB
    # POST /upload counts in the same limit: 8 creations + 1 upload, then 429 for either
    video = tmp_path / "v.mp4"
    video.write_bytes(MP4_HEAD + b"\x00" * 1000)
    with video.open("rb") as file:
        classic = requests.post(f"{stack.gateway_url}/upload", files={"file": file}, timeout=30,
                                headers={"Authorization": f"Bearer {jwt}"})
    assert classic.status_code == 202, classic.text  # fits beside the 8 MiB reserved
    assert create(stack, jwt, 1000).status_code == 429
    with video.open("rb") as file:
        assert requests.post(f"{stack.gateway_url}/upload", files={"file": file}, timeout=30,
                             headers={"Authorization": f"Bearer {jwt}"}).status_code == 429
