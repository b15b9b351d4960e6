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



# Every shape a release published (git history of src/common/messages.py), byte for byte as
# its encode() wrote it: messages still queued at an upgrade are read by the next release.
J, V, M = "6b11b764697554ccf3fad762", "6b11b764697554ccf3fad763", "6b11b764697554ccf3fad764"
ACCOUNT = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"


@pytest.mark.parametrize(("cls", "body", "expected"), [
    # 6e8fda7 ... 20b44ce: the owner's address under "username"
    (VideoMessage, b'{"job_id": "6b11b764697554ccf3fad762", "video_fid": '
                   b'"6b11b764697554ccf3fad763", "username": "a@example.com"}',
     VideoMessage(J, V, "a@example.com")),
    (Mp3Message, b'{"job_id": "6b11b764697554ccf3fad762", "video_fid": '
                 b'"6b11b764697554ccf3fad763", "username": "a@example.com", "mp3_fid": '
                 b'"6b11b764697554ccf3fad764", "error": null}',
     Mp3Message(J, V, "a@example.com", mp3_fid=M)),
    (Mp3Message, b'{"job_id": "6b11b764697554ccf3fad762", "video_fid": '
                 b'"6b11b764697554ccf3fad763", "username": "a@example.com", "mp3_fid": null, '
                 b'"error": "no audio track"}',
     Mp3Message(J, V, "a@example.com", error="no audio track")),
    # 0c9cf24 ... 221aa6a: the address under "owner"
    (VideoMessage, b'{"job_id": "6b11b764697554ccf3fad762", "video_fid": '
                   b'"6b11b764697554ccf3fad763", "owner": "a@example.com"}',
     VideoMessage(J, V, "a@example.com")),
    (Mp3Message, b'{"job_id": "6b11b764697554ccf3fad762", "video_fid": '
                 b'"6b11b764697554ccf3fad763", "owner": "a@example.com", "mp3_fid": '
                 b'"6b11b764697554ccf3fad764", "error": null}',
     Mp3Message(J, V, "a@example.com", mp3_fid=M)),
    # since 3ce23eb: the account id under "owner"
    (VideoMessage, b'{"job_id": "6b11b764697554ccf3fad762", "video_fid": '
                   b'"6b11b764697554ccf3fad763", "owner": "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"}',
     VideoMessage(J, V, ACCOUNT)),
    (Mp3Message, b'{"job_id": "6b11b764697554ccf3fad762", "video_fid": '
                 b'"6b11b764697554ccf3fad763", "owner": "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f", '
                 b'"mp3_fid": null, "error": "no audio track"}',
     Mp3Message(J, V, ACCOUNT, error="no audio track")),
])
def test_every_earlier_release_s_message_is_understood(cls, body, expected):
    assert decode(cls, body) == expected
