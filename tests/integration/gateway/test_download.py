"""GET /download with a signed URL against real GridFS: headers, body, ranges, refusals."""

import io
import secrets
import time
import uuid

import gridfs
import pytest
from werkzeug.http import parse_options_header

from common import covers
from common.settings import MessagingSettings, MongoSettings
from common.store import MP3S, Store
from gateway import create_app
from gateway.config import GatewayConfig
from gateway.security import sign_download

pytestmark = pytest.mark.integration

SECRET = secrets.token_urlsafe(32)
OWNER = "listener@example.com"
AUDIO = bytes(range(256)) * 40  # stands in for MP3 bytes: download does not look inside


@pytest.fixture(scope="module")
def gateway_app(mongodb_uri, rabbitmq_url):
    """The gateway app on the test MongoDB; auth is never called with signed URLs."""
    config = GatewayConfig(
        auth_url="http://127.0.0.1:9", auth_timeout=1.0, max_upload_bytes=1024 * 1024,
        download_url_secret=SECRET, download_url_ttl=60,
        mongo=MongoSettings(uri=mongodb_uri, db=f"mp3test_{uuid.uuid4().hex[:8]}"),
        messaging=MessagingSettings(rabbitmq_url, 3, 1.0, 5.0), log_level="WARNING")
    app = create_app({"GATEWAY": config, "TESTING": True})
    yield app
    if "store" in app.extensions:
        app.extensions["store"].close()


@pytest.fixture(scope="module")
def store(gateway_app):
    with gateway_app.app_context():
        yield Store(gateway_app.config["GATEWAY"].mongo)


def _put_mp3(store, filename: str, owner: str = OWNER) -> str:
    fid = gridfs.GridFSBucket(store.db, bucket_name=MP3S).upload_from_stream(
        filename, io.BytesIO(AUDIO),
        metadata={"owner": owner, "job_id": "j", "content_type": "audio/mpeg"})
    return str(fid)


def _get(app, fid: str, owner: str = OWNER, token: str | None = None, **headers):
    if token is None:
        token, _ = sign_download(SECRET, fid, owner, 60)
    return app.test_client().get("/download", query_string={"fid": fid, "token": token},
                                 headers=headers)


def _filename(header: str) -> str:
    """The name a browser saves as (RFC 6266: filename* wins over filename)."""
    return parse_options_header(header)[1]["filename"]


def test_signed_url_streams_the_mp3(gateway_app, store):
    fid = _put_mp3(store, "holiday.mp3")
    resp = _get(gateway_app, fid)
    assert resp.status_code == 200
    assert resp.mimetype == "audio/mpeg"
    assert resp.data == AUDIO
    assert resp.headers["Content-Length"] == str(len(AUDIO))
    assert resp.headers["Content-Disposition"] == 'attachment; filename="holiday.mp3"'


@pytest.mark.parametrize("stored, ascii_fallback, full", [
    ('my "best" take.mp3', "my 'best' take.mp3", 'my "best" take.mp3'),
    ("café été.mp3", "caf_ _t_.mp3", "café été.mp3"),
    ("концерт №1.mp3", "_______ _1.mp3", "концерт №1.mp3"),
    ("日本語.mp3", "___.mp3", "日本語.mp3"),
    ("a;b,c=d.mp3", "a;b,c=d.mp3", "a;b,c=d.mp3"),
])
def test_content_disposition_survives_quotes_and_non_ascii(gateway_app, store, stored,
                                                           ascii_fallback, full):
    resp = _get(gateway_app, _put_mp3(store, stored))
    assert resp.status_code == 200
    header = resp.headers["Content-Disposition"]
    header.encode("latin-1")  # a valid HTTP header value
    assert header.startswith(f'attachment; filename="{ascii_fallback}"')
    assert _filename(header) == full


def test_range_request_returns_the_slice(gateway_app, store):
    fid = _put_mp3(store, "slice.mp3")
    resp = _get(gateway_app, fid, Range="bytes=100-199")
    assert resp.status_code == 206
    assert resp.data == AUDIO[100:200]
    assert resp.headers["Content-Range"] == f"bytes 100-199/{len(AUDIO)}"


def test_a_suffix_range_longer_than_the_file_is_the_whole_file(gateway_app, store):
    """RFC 9110 14.1.2: a suffix-length over the representation's length means all of it."""
    fid = _put_mp3(store, "suffix.mp3")
    for suffix in (len(AUDIO), len(AUDIO) + 1, 999999999):
        resp = _get(gateway_app, fid, Range=f"bytes=-{suffix}")
        assert resp.status_code == 206, (suffix, resp.status_code)
        assert resp.headers["Content-Range"] == f"bytes 0-{len(AUDIO) - 1}/{len(AUDIO)}"
        assert resp.headers["Content-Length"] == str(len(AUDIO))
        assert resp.data == AUDIO
    resp = _get(gateway_app, fid, Range="bytes=-10")
    assert resp.status_code == 206 and resp.data == AUDIO[-10:]


@pytest.mark.parametrize("header", ["items=0-5", "pages=1-2", "bytes=0-1,5-9",
                                    "bytes=5-9,0-1", "bytes=0-0,-1", "bytes=0-1,99999999-"])
def test_other_units_and_several_ranges_are_ignored_for_the_whole_file(gateway_app, store,
                                                                       header):
    """RFC 9110 14.2: an unknown range unit MUST be ignored; a server MAY ignore Range, and
    this one does for several ranges (no multipart/byteranges): 200, never 416."""
    fid = _put_mp3(store, "whole.mp3")
    resp = _get(gateway_app, fid, Range=header)
    assert resp.status_code == 200, resp.status_code
    assert resp.data == AUDIO and "Content-Range" not in resp.headers
    assert resp.headers["Content-Length"] == str(len(AUDIO))
    assert resp.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("header", [f"bytes={len(AUDIO)}-", f"bytes={len(AUDIO) + 5}-99999999"])
def test_a_range_starting_past_the_end_is_416(gateway_app, store, header):
    fid = _put_mp3(store, "short.mp3")
    resp = _get(gateway_app, fid, Range=header)
    assert resp.status_code == 416 and resp.is_json
    assert resp.headers["Content-Range"] == f"bytes */{len(AUDIO)}"


LINK_NOT_FOUND = {"error": "no such file, or this download link is invalid or has expired"}


@pytest.mark.parametrize("make_token", [
    lambda fid: sign_download(SECRET, fid, "thief@example.com", 60)[0],
    lambda fid: sign_download(SECRET, fid, OWNER, -5)[0],
    lambda fid: sign_download("another secret, just as long as the real one", fid, OWNER, 60)[0],
    lambda fid: "123.abc", lambda fid: "", lambda fid: "²." + "a" * 43,
    lambda fid: "9" * 5000 + ".abc", lambda fid: f"{int(time.time()) + 60}.é",
], ids=["foreign owner", "expired", "other secret", "garbage", "empty", "unicode digit",
        "huge number", "non-ascii signature"])
def test_a_bad_token_for_an_existing_file_looks_like_an_unknown_file(gateway_app, store,
                                                                     make_token):
    fid = _put_mp3(store, "mine.mp3")
    unknown = _get(gateway_app, "65f0c0ffee0000000000abcd")
    resp = _get(gateway_app, fid, token=make_token(fid))
    assert resp.status_code == unknown.status_code == 404
    assert resp.get_json() == unknown.get_json() == LINK_NOT_FOUND
    assert resp.headers.get("Content-Length") == unknown.headers.get("Content-Length")


@pytest.mark.parametrize("fid", ["65f0c0ffee0000000000abcd", "not-an-id", ""])
def test_unknown_file_is_404(gateway_app, fid):
    resp = _get(gateway_app, fid)
    assert resp.status_code == 404 and resp.get_json() == LINK_NOT_FOUND


def test_without_token_or_bearer_is_401(gateway_app, store):
    fid = _put_mp3(store, "locked.mp3")
    resp = gateway_app.test_client().get("/download", query_string={"fid": fid})
    assert resp.status_code == 401 and resp.is_json


def test_a_cover_picture_is_no_mp3_to_download(gateway_app, store):
    job = {"_id": "j", "owner": OWNER, "filename": "holiday.mp4"}
    fid = str(covers.save(store, job, b"\xff\xd8 a picture"))
    resp = _get(gateway_app, fid)  # even through a link signed for it
    assert resp.status_code == 404 and resp.json == LINK_NOT_FOUND
