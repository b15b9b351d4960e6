"""Queue messages round-trip, and anything malformed is a permanent failure."""

import json

import pytest

from common.errors import PermanentError
from common.messages import Mp3Message, VideoMessage, decode, encode


def test_video_message_round_trips():
    msg = VideoMessage(job_id="j1", video_fid="v1", owner="a@example.com")
    assert json.loads(encode(msg)) == {"job_id": "j1", "video_fid": "v1",
                                       "owner": "a@example.com"}
    assert decode(VideoMessage, encode(msg)) == msg


def test_failed_mp3_message_carries_null_fid_and_error():
    msg = Mp3Message(job_id="j1", video_fid="v1", owner="a@example.com", error="no audio")
    doc = json.loads(encode(msg))
    assert doc["mp3_fid"] is None and doc["error"] == "no audio"
    assert decode(Mp3Message, encode(msg)) == msg


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00", b""])
def test_not_json_is_permanent(body):
    with pytest.raises(PermanentError, match="not JSON"):
        decode(VideoMessage, body)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_not_an_object_is_permanent(body):
    with pytest.raises(PermanentError, match="not a JSON object"):
        decode(VideoMessage, body)


def test_missing_fields_are_named():
    with pytest.raises(PermanentError, match="missing video_fid, owner"):
        decode(VideoMessage, b'{"job_id": "j1"}')


@pytest.mark.parametrize("value", ["", None, 7, ["j1"]])
def test_empty_or_non_string_field_counts_as_missing(value):
    body = json.dumps({"job_id": value, "video_fid": "v1", "owner": "u"}).encode()
    with pytest.raises(PermanentError, match="missing job_id"):
        decode(VideoMessage, body)


def test_mp3_message_needs_no_fid_or_error():
    msg = decode(Mp3Message, b'{"job_id": "j", "video_fid": "v", "owner": "u"}')
    assert msg.mp3_fid is None and msg.error is None


def test_unknown_fields_are_ignored():
    body = b'{"job_id": "j", "video_fid": "v", "owner": "u", "extra": 1}'
    assert decode(VideoMessage, body) == VideoMessage("j", "v", "u")


def test_a_message_of_an_earlier_version_names_the_owner_username():
    body = b'{"job_id": "j", "video_fid": "v", "username": "a@example.com"}'
    assert decode(VideoMessage, body) == VideoMessage("j", "v", "a@example.com")
