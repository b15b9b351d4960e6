"""The tus endpoints (gateway.resumable) against real MongoDB and RabbitMQ: creation, appends
in pieces that do not fall on chunk boundaries, the GridFS file they make, the checks of POST
/upload, checksums, the quota reservation, termination, another user's upload."""

import base64
import hashlib
import os
import secrets
import uuid

import pytest
import requests

from common import resumable
from common.quotas import Quotas
from common.settings import MessagingSettings, MongoSettings
from common.store import CHUNK_SIZE, VIDEOS, Store, object_id
from gateway import backends, create_app
from gateway.config import GatewayConfig
from gateway.resumable import TUS_VERSION

pytestmark = pytest.mark.integration

USERS = {"token-a": "owner-a", "token-b": "owner-b"}
LIMIT = 8 * 1024 * 1024


def _auth(path, method="POST", **kwargs):
    token = kwargs.get("headers", {}).get("Authorization", "").removeprefix("Bearer ")
    response = requests.Response()
    response.headers["Content-Type"] = "application/json"
    if path == "/validate" and token in USERS:
        response.status_code = 200
        response._content = (b'{"sub": "%s", "verified": true, "admin": false}'
                             % USERS[token].encode())
    else:
        response.status_code = 401
        response._content = b'{"error": "invalid token"}'
    return response


@pytest.fixture
def app(mongodb_uri, vhost, monkeypatch):
    config = GatewayConfig(
        auth_url="http://127.0.0.1:9", auth_timeout=1.0, max_upload_bytes=LIMIT,
        download_url_secret=secrets.token_urlsafe(32), download_url_ttl=60,
        mongo=MongoSettings(uri=mongodb_uri, db=f"mp3test_{uuid.uuid4().hex[:8]}"),
        messaging=MessagingSettings(vhost, 3, 1.0, 5.0), log_level="WARNING",
        storage_quota_bytes=6 * 1024 * 1024, max_active_jobs=2)
    monkeypatch.setattr(backends, "call_auth", _auth)
    app = create_app({"GATEWAY": config, "TESTING": True})
    yield app
    store = Store(config.mongo)
    store.client.drop_database(config.mongo.db)
    store.close()


@pytest.fixture
def store(app):
    store = Store(app.config["GATEWAY"].mongo)
    yield store
    store.close()


def headers(token="token-a", **more):
    return {"Authorization": f"Bearer {token}", "Tus-Resumable": TUS_VERSION, **more}


def metadata(**values) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                    for key, value in values.items())


def video(size: int) -> bytes:
    return (b"\x00\x00\x00\x18ftypmp42" + os.urandom(size))[:size]


def create(client, length, token="token-a", **meta):
    return client.post("/uploads", headers=headers(
        token, **{"Upload-Length": str(length),
                  "Upload-Metadata": metadata(filename="clip.mp4", **meta)}))


def patch(client, url, offset, data, token="token-a", **more):
    return client.patch(url, data=data, headers=headers(
        token, **{"Upload-Offset": str(offset),
                  "Content-Type": "application/offset+octet-stream", **more}))


def test_options_advertise_the_protocol_without_a_login(app):
    response = app.test_client().options("/uploads")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation", "creation-with-upload", "termination", "expiration", "checksum"}
    assert response.headers["Tus-Max-Size"] == str(LIMIT)
    assert "sha1" in response.headers["Tus-Checksum-Algorithm"].split(",")


def test_an_upload_in_uneven_pieces_becomes_an_ordinary_gridfs_file_and_a_job(app, store):
    client = app.test_client()
    data = video(2 * CHUNK_SIZE + 12345)
    created = create(client, len(data), quality="v0", title="Talk")
    assert created.status_code == 201, created.json
    url = created.headers["Location"]
    assert created.headers["Upload-Offset"] == "0" and "Upload-Expires" in created.headers
    upload_id = url.rsplit("/", 1)[1]
    cuts = [0, 3000, 700_000, CHUNK_SIZE + 5, 2 * CHUNK_SIZE, len(data)]
    for start, end in zip(cuts, cuts[1:], strict=False):
        head = client.head(url, headers=headers())
        assert head.status_code == 200 and head.headers["Upload-Offset"] == str(start)
        assert head.headers["Upload-Length"] == str(len(data))
        response = patch(client, url, start, data[start:end])
        assert response.status_code == 204, response.data
        assert response.headers["Upload-Offset"] == str(end)
    assert response.headers["Upload-Job-Id"] == upload_id
    job = store.jobs.find_one({"_id": object_id(upload_id)})
    assert job["owner"] == "owner-a" and job["size"] == len(data)
    assert job["options"]["quality"] == "v0" and job["options"]["title"] == "Talk"
    with store.open_download(VIDEOS, job["video_fid"]) as reader:
        assert hashlib.sha256(reader.read()).digest() == hashlib.sha256(data).digest()
    doc = store.find_file(VIDEOS, job["video_fid"])
    assert doc["metadata"] == {"owner": "owner-a", "job_id": upload_id,
                               "content_type": "application/octet-stream"}
    assert doc["filename"] == "clip.mp4"
    # complete: no longer counted as an upload, counted as its job
    assert Quotas(store).usage("owner-a").active_jobs == 1
    assert patch(client, url, len(data), b"x").status_code == 409


def test_creation_with_upload_and_a_wrong_offset(app, store):
    client = app.test_client()
    data = video(100_000)
    response = client.post("/uploads", data=data[:5000], headers=headers(**{
        "Upload-Length": str(len(data)), "Content-Type": "application/offset+octet-stream"}))
    assert response.status_code == 201 and response.headers["Upload-Offset"] == "5000"
    url = response.headers["Location"]
    wrong = patch(client, url, 4000, data[4000:])
    assert wrong.status_code == 409 and wrong.headers["Upload-Offset"] == "5000"
    assert patch(client, url, 5000, data[5000:]).status_code == 204
    text = b"plain words, line after line\n" * 500
    refused = client.post("/uploads", data=text, headers=headers(**{
        "Upload-Length": str(len(text)), "Content-Type": "application/offset+octet-stream"}))
    assert refused.status_code == 415 and "Location" not in refused.headers
    too_long = client.post("/uploads", data=data, headers=headers(**{
        "Upload-Length": "1000", "Content-Type": "application/offset+octet-stream"}))
    assert too_long.status_code == 413 and "Location" not in too_long.headers
    assert resumable.collection(store).count_documents({}) == 1  # the first one only
    assert Quotas(store).usage("owner-a").active_jobs == 1  # its job


def test_a_text_file_is_refused_at_its_first_bytes_as_post_upload_does(app, store):
    client = app.test_client()
    text = b"#EXTM3U\n" + b"just some text, line after line\n" * 2000
    url = create(client, len(text)).headers["Location"]
    response = patch(client, url, 0, text[:10_000])
    assert response.status_code == 415
    assert response.json == {"error": "this file does not look like audio or video"}
    assert client.head(url, headers=headers()).status_code == 404  # dropped
    assert Quotas(store).usage("owner-a").active_jobs == 0
    assert list(store.chunks(VIDEOS).find({})) == []


def test_a_wrong_checksum_is_460_and_nothing_moves(app):
    client = app.test_client()
    data = video(CHUNK_SIZE + 500)
    url = create(client, len(data)).headers["Location"]
    digest = base64.b64encode(hashlib.sha1(data).digest()).decode()
    bad = patch(client, url, 0, data[:-1] + b"\x00", **{"Upload-Checksum": f"sha1 {digest}"})
    assert bad.status_code == 460
    assert client.head(url, headers=headers()).headers["Upload-Offset"] == "0"
    unknown = patch(client, url, 0, data, **{"Upload-Checksum": f"crc32 {digest}"})
    assert unknown.status_code == 400
    good = patch(client, url, 0, data, **{"Upload-Checksum": f"sha1 {digest}"})
    assert good.status_code == 204 and good.headers["Upload-Offset"] == str(len(data))


def test_creation_checks_size_options_and_quotas_like_post_upload(app, store):
    client = app.test_client()
    too_big = create(client, LIMIT + 1)
    assert too_big.status_code == 413 and str(LIMIT) in too_big.json["error"]
    bad = create(client, 1000, quality="v9")
    assert bad.status_code == 422 and bad.json["error"].startswith("quality must be one of")
    unknown = create(client, 1000, colour="red")
    assert unknown.status_code == 422
    assert create(client, 0).status_code == 400
    assert client.post("/uploads", headers=headers()).status_code == 400  # no Upload-Length
    # the quota is 6 MiB: an unfinished 5 MiB upload is counted, whole, until it expires
    assert create(client, 5 * 1024 * 1024).status_code == 201
    usage = Quotas(store).usage("owner-a")
    assert usage.bytes == 5 * 1024 * 1024 and usage.active_jobs == 1
    over = create(client, 2 * 1024 * 1024)
    assert over.status_code == 413 and "storage quota" in over.json["error"]
    assert create(client, 1000).status_code == 201
    busy = create(client, 1000)  # max_active_jobs = 2
    assert busy.status_code == 429 and "conversions waiting" in busy.json["error"]


def test_the_reservation_outlives_the_staleness_of_uploads_in_progress(app, store,
                                                                        monkeypatch):
    client = app.test_client()
    assert create(client, 5 * 1024 * 1024).status_code == 201
    quotas = Quotas(store)
    from common import quotas as quotas_module

    monkeypatch.setattr(quotas_module, "UPLOAD_STALE_SECONDS", -1.0)  # all "not heard of"
    assert quotas.remove_stale_uploads() == 0
    assert quotas.usage("owner-a").bytes == 5 * 1024 * 1024


def test_another_users_upload_is_404_and_termination_frees_everything(app, store):
    client = app.test_client()
    data = video(CHUNK_SIZE + 10)
    url = create(client, len(data)).headers["Location"]
    assert patch(client, url, 0, data[:CHUNK_SIZE + 1]).status_code == 204
    assert client.head(url, headers=headers("token-b")).status_code == 404
    assert patch(client, url, CHUNK_SIZE + 1, data[CHUNK_SIZE + 1:],
                 token="token-b").status_code == 404
    assert client.delete(url, headers=headers("token-b")).status_code == 404
    assert client.head(url, headers=headers()).status_code == 200
    assert client.delete(url, headers=headers()).status_code == 204
    assert client.head(url, headers=headers()).status_code == 404
    assert list(store.chunks(VIDEOS).find({})) == []
    assert resumable.collection(store).count_documents({}) == 0
    assert Quotas(store).usage("owner-a").bytes == 0


def test_tus_resumable_is_required_and_login_too(app):
    client = app.test_client()
    response = client.post("/uploads", headers={"Authorization": "Bearer token-a",
                                                "Upload-Length": "10"})
    assert response.status_code == 412 and response.headers["Tus-Version"] == "1.0.0"
    anonymous = client.post("/uploads", headers={"Tus-Resumable": "1.0.0",
                                                 "Upload-Length": "10"})
    assert anonymous.status_code == 401


def test_a_job_that_cannot_be_recorded_is_503_and_the_client_sends_the_end_again(
        app, store, monkeypatch):
    from common.errors import RetryableError
    from common.jobs import Jobs

    client = app.test_client()
    data = video(2 * CHUNK_SIZE + 777)
    url = create(client, len(data)).headers["Location"]
    create_job = Jobs.create

    def broker_down(*args, **kwargs):
        raise RetryableError("the broker is down (test)")

    monkeypatch.setattr(Jobs, "create", broker_down)
    assert patch(client, url, 0, data).status_code == 503
    offset = int(client.head(url, headers=headers()).headers["Upload-Offset"])
    assert offset == 2 * CHUNK_SIZE  # the last chunk's start: resume sends the end again
    monkeypatch.setattr(Jobs, "create", create_job)
    done = patch(client, url, offset, data[offset:])
    assert done.status_code == 204 and done.headers["Upload-Job-Id"] == url.rsplit("/", 1)[1]
    job = store.jobs.find_one({"_id": object_id(done.headers["Upload-Job-Id"])})
    with store.open_download(VIDEOS, job["video_fid"]) as reader:
        assert reader.read() == data


def test_one_request_appends_at_a_time_and_a_lapsed_lease_lets_the_next_one_in(app, store):
    client = app.test_client()
    data = video(50_000)
    url = create(client, len(data)).headers["Location"]
    uploads = resumable.collection(store)
    oid = object_id(url.rsplit("/", 1)[1])
    # another request holds it (a gateway that stopped mid-PATCH holds it until the lease lapses)
    uploads.update_one({"_id": oid}, {"$set": {"lease": "other", "lease_until": 9e12}})
    busy = patch(client, url, 0, data)
    assert busy.status_code == 423
    assert client.head(url, headers=headers()).headers["Upload-Offset"] == "0"
    uploads.update_one({"_id": oid}, {"$set": {"lease_until": 1.0}})  # lapsed
    assert patch(client, url, 0, data).status_code == 204
    assert uploads.find_one({"_id": oid})["lease"] is None


def test_a_body_without_content_length_is_read_to_its_end_with_or_without_a_checksum(app):
    import io

    client = app.test_client()
    data = video(CHUNK_SIZE + 4321)
    url = create(client, len(data)).headers["Location"]
    half = len(data) // 2
    digest = base64.b64encode(hashlib.sha1(data[:half]).digest()).decode()

    def chunked(offset, body, **more):
        return client.patch(url, input_stream=io.BytesIO(body), headers=headers(**{
            "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
            **more}))

    first = chunked(0, data[:half], **{"Upload-Checksum": f"sha1 {digest}"})
    assert first.status_code == 204 and first.headers["Upload-Offset"] == str(half)
    rest = chunked(half, data[half:])
    assert rest.status_code == 204 and rest.headers["Upload-Offset"] == str(len(data))
