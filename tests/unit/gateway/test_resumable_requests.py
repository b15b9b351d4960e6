"""The tus endpoints' own checks, before anything is stored (gateway.resumable): Upload-Metadata
read as POST /upload reads its form fields, the protocol's headers, the setting."""

import base64

import pytest

from common import options
from gateway import resumable
from gateway.config import GatewayConfig
from gateway.refusals import UploadRejected


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_metadata_carries_the_name_the_type_and_the_options_parsed_like_form_fields():
    raw = (f"filename {b64('../dir/My talk.mp4')},filetype {b64('video/mp4')},"
           f"quality {b64('V0')},start {b64('1:30')},end {b64('45:00')},title {b64('Ünïcode')}")
    filename, content_type, chosen = resumable._metadata(raw)
    assert filename == "My talk.mp4" and content_type == "video/mp4"
    assert chosen == options.from_fields(
        {"quality": "V0", "start": "1:30", "end": "45:00", "title": "Ünïcode"}, filename)


def test_no_metadata_gives_the_defaults_of_post_upload():
    filename, content_type, chosen = resumable._metadata("")
    assert (filename, content_type) == ("video", "application/octet-stream")
    assert chosen == options.combine({}, "video")


@pytest.mark.parametrize(("raw", "message"), [
    (f"quality {b64('v9')}", "quality must be one of"),
    (f"colour {b64('red')}", "colour"),
    (f"start {b64('10')},end {b64('5')}", "must be after start"),
    (f"title {b64('x' * 1025)}", "longer than"),
])
def test_a_bad_option_is_refused_with_the_message_of_post_upload(raw, message):
    with pytest.raises(options.InvalidOption, match=message):
        resumable._metadata(raw)


@pytest.mark.parametrize("raw", [
    "filename not*base64", f"filename {b64('a')},filename {b64('b')}",
    "x" * (resumable.METADATA_MAX_BYTES + 1), "filename " + base64.b64encode(b"\xff").decode(),
])
def test_malformed_metadata_is_400(raw):
    with pytest.raises(UploadRejected) as refused:
        resumable._metadata(raw)
    assert refused.value.status == 400


@pytest.mark.parametrize(("value", "whole"), [
    ("0", 0), ("123", 123), (None, None), ("-1", None), ("1e3", None), ("²", None),
    ("9" * 19, None), (" 1", None),
])
def test_header_numbers_are_plain_whole_numbers(value, whole):
    assert resumable._whole(value) == whole


def test_options_need_no_login_and_advertise_the_extensions(client):
    response = client.options("/uploads")
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Extension"] == resumable.EXTENSIONS


def test_every_other_request_needs_tus_resumable_before_the_login(client, stand_ins):
    for method in ("POST", "PATCH", "DELETE", "HEAD"):
        path = "/uploads" if method == "POST" else "/uploads/0123456789abcdef01234567"
        response = client.open(path, method=method)
        assert response.status_code == 412, method
        assert response.headers["Tus-Version"] == "1.0.0"
    assert stand_ins.auth.calls == []


def test_an_upload_over_the_size_limit_is_413_at_creation(client, bearer, config):
    response = client.post("/uploads", headers={
        **bearer, "Tus-Resumable": "1.0.0",
        "Upload-Length": str(config.max_upload_bytes + 1)})
    assert response.status_code == 413
    assert response.json == {"error": f"file too large: the limit is "
                                      f"{config.max_upload_bytes} bytes"}


def test_the_expiry_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DOWNLOAD_URL_SECRET", "s" * 40)
    assert GatewayConfig.from_env().resumable_upload_expiry_hours == 24
    monkeypatch.setenv("RESUMABLE_UPLOAD_EXPIRY_HOURS", "2")
    assert GatewayConfig.from_env().resumable_upload_expiry_hours == 2
