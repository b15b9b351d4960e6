"""What the gateway answers by itself: bad uploads, bad tokens, unknown routes and methods, its
OpenAPI document and the headers of its page. Backends are the in-memory stand-ins (conftest)."""

import pytest

from gateway.multipart import FRAMING
from gateway.ui import PAGE_POLICY, openapi_document
from tests.unit.gateway.conftest import MAX_UPLOAD_BYTES, USER

BOUNDARY = "----form-boundary-7MA4YWxk"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body of (field name, filename or None, content) parts."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def _error(resp, status: int) -> str:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.is_json and set(resp.get_json()) == {"error"}, resp.get_data(as_text=True)
    return resp.get_json()["error"]


def test_an_upload_without_a_token_is_401_and_never_asks_auth(client, stand_ins):
    resp = client.post("/upload", data=multipart(("file", "a.mp4", b"x")), content_type=MULTIPART)
    assert "missing Authorization header" in _error(resp, 401)
    assert stand_ins.auth.calls == []


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer", "x"])
def test_a_token_auth_refuses_is_401_with_its_message_and_stores_nothing(client, stand_ins,
                                                                          header):
    resp = client.post("/upload", data=multipart(("file", "a.mp4", b"x")),
                       content_type=MULTIPART, headers={"Authorization": header})
    assert _error(resp, 401) == "invalid token (stand-in)"
    assert stand_ins.auth.calls == ["/validate"]
    assert stand_ins.store.uploads == [] and stand_ins.jobs.created == []


def test_auth_down_is_503_not_401(client, stand_ins, bearer):
    stand_ins.auth.down = True
    resp = client.post("/upload", data=multipart(("file", "a.mp4", b"x")),
                       content_type=MULTIPART, headers=bearer)
    assert "authentication service unavailable" in _error(resp, 503)


@pytest.mark.parametrize("content_type", [
    "application/json", "application/octet-stream", "multipart/form-data",  # no boundary
    "multipart/mixed; boundary=x", None,
])
def test_an_upload_that_is_not_multipart_form_data_is_400(client, stand_ins, bearer,
                                                          content_type):
    resp = client.post("/upload", data=b'{"file": "a.mp4"}', content_type=content_type,
                       headers=bearer)
    assert "multipart/form-data with a field named 'file'" in _error(resp, 400)
    assert stand_ins.store.uploads == []


def test_an_upload_without_the_file_field_is_400(client, stand_ins, bearer):
    data = multipart(("title", None, b"hi"))
    resp = client.post("/upload", data=data, content_type=MULTIPART, headers=bearer)
    assert _error(resp, 400) == "missing multipart field 'file'"
    data = multipart(("video", "a.mp4", b"RIFF"))
    resp = client.post("/upload", data=data, content_type=MULTIPART, headers=bearer)
    assert _error(resp, 422).startswith("unknown field 'video': the upload's fields are file,")
    assert stand_ins.store.uploads == [] and stand_ins.jobs.created == []


@pytest.mark.parametrize("body", [
    b"no boundary anywhere in this body",
    f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\n"
    "the body stops before its final boundary".encode(),
    f"--{BOUNDARY}\r\nno blank line after the part headers".encode(),
])
def test_a_malformed_multipart_body_is_400(client, stand_ins, bearer, body):
    resp = client.post("/upload", data=body, content_type=MULTIPART, headers=bearer)
    assert _error(resp, 400).startswith("malformed multipart body")
    assert stand_ins.jobs.created == []
    assert all(upload.aborted for upload in stand_ins.store.uploads)


def test_an_announced_body_over_the_limit_is_413_before_it_is_read(client, stand_ins, bearer):
    body = multipart(("file", "a.mp4", b"x"))
    resp = client.post("/upload", data=body, content_type=MULTIPART, headers=bearer,
                       environ_overrides={"CONTENT_LENGTH": str(MAX_UPLOAD_BYTES + FRAMING + 1)})
    assert _error(resp, 413) == f"file too large: the limit is {MAX_UPLOAD_BYTES} bytes"
    assert resp.headers["Connection"] == "close"
    assert stand_ins.store.uploads == []


def test_a_file_over_the_limit_is_413_and_its_start_is_thrown_away(client, stand_ins, bearer,
                                                                   media):
    video = media("mp4_aac51").read_bytes()
    big = (video * (MAX_UPLOAD_BYTES // len(video) + 2))[: MAX_UPLOAD_BYTES + 1]
    resp = client.post("/upload", data=multipart(("file", "big.mp4", big)),
                       content_type=MULTIPART, headers=bearer)
    assert _error(resp, 413) == f"file too large: the limit is {MAX_UPLOAD_BYTES} bytes"
    assert all(upload.aborted for upload in stand_ins.store.uploads)
    assert stand_ins.jobs.created == []


def test_an_empty_file_is_400_and_text_is_415(client, stand_ins, bearer):
    empty = client.post("/upload", data=multipart(("file", "a.mp4", b"")),
                        content_type=MULTIPART, headers=bearer)
    assert _error(empty, 400) == "the uploaded file is empty"
    text = client.post("/upload", data=multipart(("file", "a.mp4", b"just some text\n" * 40)),
                       content_type=MULTIPART, headers=bearer)
    assert _error(text, 415) == "this file does not look like audio or video"
    assert stand_ins.store.uploads == [] and stand_ins.jobs.created == []


def test_a_video_is_accepted_with_its_job_id_under_its_base_name(client, stand_ins, bearer,
                                                                 media):
    video = media("mp4_aac51").read_bytes()[: MAX_UPLOAD_BYTES // 2]
    resp = client.post("/upload", data=multipart(("file", "../../etc/party.mp4", video)),
                       content_type=MULTIPART, headers=bearer)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    (job,) = stand_ins.jobs.created
    assert resp.get_json() == {"job_id": str(job["_id"]), "video_fid": str(job["video_fid"])}
    assert (job["owner"], job["filename"], job["size"]) == (USER, "party.mp4", len(video))
    assert job["options"]["title"] == "party" and job["options"]["quality"] is None
    (upload,) = stand_ins.store.uploads
    assert upload.closed and bytes(upload.data) == video


@pytest.mark.parametrize("char", ["\u202a", "\u202b", "\u202c", "\u2066", "\u2067",
                                  "\u2068", "\u2069", "\u202e"],
                         ids=lambda ch: f"U+{ord(ch):04X}")
def test_a_tag_with_a_bidi_control_is_422_and_a_file_name_loses_them(client, stand_ins,
                                                                        bearer, media, char):
    """Text that displays as something else (``Invoice\u2067exe.mp3\u2069`` shows as
    "Invoice3pm.exe" reversed) is refused in a tag, and dropped from a file name."""
    video = media("mp4_aac51").read_bytes()[: MAX_UPLOAD_BYTES // 2]
    tagged = multipart(("artist", None, f"Invoice{char}3pm.exe".encode()),
                       ("file", "a.mp4", video))
    resp = client.post("/upload", data=tagged, content_type=MULTIPART, headers=bearer)
    assert _error(resp, 422) == "artist must be plain text without control characters"
    assert stand_ins.store.uploads == [] and stand_ins.jobs.created == []
    named = multipart(("file", f"Invoice{char}3pm.exe.mp4", video))
    resp = client.post("/upload", data=named, content_type=MULTIPART, headers=bearer)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    (job,) = stand_ins.jobs.created
    assert job["filename"] == "Invoice3pm.exe.mp4"
    assert job["options"]["title"] == "Invoice3pm.exe"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/no-such-page"), ("POST", "/uploadz"), ("GET", "/jobs/1/nothing"),
    ("GET", "/static/missing.js"),
])
def test_unknown_routes_are_404_json(client, method, path):
    assert _error(client.open(path, method=method), 404)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/upload"), ("PUT", "/login"), ("DELETE", "/register"), ("POST", "/openapi.json"),
])
def test_a_method_a_route_does_not_take_is_405_json_with_allow(client, method, path):
    resp = client.open(path, method=method)
    assert _error(resp, 405)
    assert method not in resp.headers["Allow"] and resp.headers["Allow"]


def test_the_openapi_document_is_served_and_describes_every_route(app, client):
    resp = client.get("/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    document = resp.get_json()
    assert document == openapi_document() and document["openapi"].startswith("3.")
    routes = {rule.rule.replace("<", "{").replace(">", "}") for rule in app.url_map.iter_rules()
              if rule.endpoint != "static"}
    assert routes <= set(document["paths"]), routes - set(document["paths"])


def test_the_page_is_served_with_its_security_headers(client):
    resp = client.get("/")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert resp.headers["Content-Security-Policy"] == PAGE_POLICY
    assert "frame-ancestors 'none'" in PAGE_POLICY and "object-src 'none'" in PAGE_POLICY
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200, asset
